package motion

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkAnalyze measures one frame's analysis on a noisy textured
// picture, still and with a person-sized box moving across it.
func BenchmarkAnalyze(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	const frames = 64
	for _, moving := range []bool{false, true} {
		name := "still"
		if moving {
			name = "moving"
		}
		var seq [][]byte
		for i := range frames {
			var person func(x, y int) bool
			if moving {
				x0 := 10 + i
				person = func(x, y int) bool { return x >= x0 && x < x0+10 && y >= 40 && y < 70 }
			}
			seq = append(seq, frameWith(FrameWidth, FrameHeight, 100, 12, rng, person, 30))
		}
		b.Run(name, func(b *testing.B) {
			a, err := NewPixelAnalyzer(FrameWidth, FrameHeight, 25, 0.005)
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; b.Loop(); i++ {
				a.Analyze(seq[i%frames])
			}
			b.ReportMetric(float64(b.Elapsed().Seconds())/float64(b.N)*25*3600, "cpu-s/cam-hour@25fps")
		})
	}
}
