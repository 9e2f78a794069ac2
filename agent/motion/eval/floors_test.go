package eval

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vigil-cctv/vigil/agent/motion/evalset"
)

// Floors of the default detector on the small subset of the generated
// evaluation set (make test); make bench-motion scores the whole set.
const (
	floorRecall    = 0.95
	floorPrecision = 0.90
	// unseenSpread is how far the scores on clips made with another seed
	// (other backgrounds, shapes, speeds, timings) may be from seed 1's:
	// nothing may be tuned to the set.
	unseenSpread = 0.05
	unseenSeed   = 7
)

// smallSet renders (or finds up to date) the small subset made with seed
// into a directory kept between runs: the user's cache when there is one.
func smallSet(t *testing.T, seed uint64) string {
	t.Helper()
	for _, bin := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed", bin)
		}
	}
	root, err := os.UserCacheDir()
	if err != nil {
		root = t.TempDir()
	}
	dir := filepath.Join(root, "vigil", fmt.Sprintf("evalset-small-seed%d", seed))
	if _, err := evalset.Generate(context.Background(), evalset.Options{Dir: dir, Set: evalset.SetSmall, Seed: seed}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestDefaultDetectorFloors(t *testing.T) {
	score := func(seed uint64) (recall, precision float64) {
		rep, err := Run(context.Background(), Config{Dir: smallSet(t, seed), MergeGap: DefaultMergeGap, StartRuns: -1})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Detector != DefaultDetector || rep.Events == 0 || rep.Recall == nil || rep.Precision == nil {
			t.Fatalf("seed %d: detector %s, %d events, recall %v, precision %v", seed, rep.Detector, rep.Events, deref(rep.Recall), deref(rep.Precision))
		}
		for _, c := range rep.Clips {
			t.Logf("seed %d %s: %d/%d events, intervals %v, %d false alarms, %.1f CPU-s per camera-hour",
				seed, c.Name, c.Detected, c.Events, c.Intervals, c.FalseAlarms, c.CPUSecondsPerCameraHour)
			if c.FramesJudged != c.Frames {
				t.Errorf("seed %d %s: %d of %d frames judged", seed, c.Name, c.FramesJudged, c.Frames)
			}
		}
		t.Logf("seed %d: recall %.3f precision %.3f false alarms/h %v, %.1f CPU-s per camera-hour (with a detector start per clip)",
			seed, *rep.Recall, *rep.Precision, deref(rep.FalseAlarmsPerHour), rep.CPUSecondsPerCameraHour)
		if *rep.Recall < floorRecall || *rep.Precision < floorPrecision {
			t.Errorf("seed %d: recall %.3f precision %.3f, floors %.2f and %.2f", seed, *rep.Recall, *rep.Precision, floorRecall, floorPrecision)
		}
		return *rep.Recall, *rep.Precision
	}
	recall, precision := score(1)
	unseenRecall, unseenPrecision := score(unseenSeed)
	if math.Abs(unseenRecall-recall) > unseenSpread || math.Abs(unseenPrecision-precision) > unseenSpread {
		t.Errorf("unseen seed %d: recall %.3f precision %.3f; seed 1: %.3f %.3f; want within %.2f",
			unseenSeed, unseenRecall, unseenPrecision, recall, precision, unseenSpread)
	}
}
