package evalset

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Scenes are designed on a 640x360 grid ("design units"); scale maps them
// to the clip's pixels.
const (
	designW = 640
	designH = 360
)

// scene is everything a clip is rendered from. Positions are in pixels of
// the canvas, which is the clip plus margin on every side (shake crops the
// canvas; without shake the margin is 0).
type scene struct {
	name, about string
	w, h        int // clip size
	frames      int
	scale       float64 // clip pixels per design unit
	margin      int     // even
	horizon     float64 // design units
	ground      rgb     // colour of the road, for object contrast

	bg     backdrop
	movers []mover
	leaves []leaf
	mask   []Point // clip coordinates; nil without foliage

	light light
	rain  *rain
	shake *shake

	noise     int // strength of the per-frame sensor noise on luma
	noiseSeed int
}

// backdrop is the still picture: flat boxes, then texture, vignette, blur.
type backdrop struct {
	base    rgb
	boxes   []box
	texSeed [3]int
	texLow  int // strength of the large-blotch texture
	texFine int // strength of the static fine grain
	blur    float64
}

type rgb struct{ r, g, b int }

func (c rgb) hex() string { return fmt.Sprintf("0x%02x%02x%02x", c.r, c.g, c.b) }

// yuv is BT.601 limited range, as ffmpeg's color and drawbox use.
func (c rgb) yuv() (y, u, v int) {
	r, g, b := float64(c.r)/255, float64(c.g)/255, float64(c.b)/255
	y = int(math.Round(16 + 65.481*r + 128.553*g + 24.966*b))
	u = int(math.Round(128 - 37.797*r - 74.203*g + 112.0*b))
	v = int(math.Round(128 + 112.0*r - 93.786*g - 18.214*b))
	return y, u, v
}

// box is a filled rectangle of the backdrop, in canvas pixels.
type box struct {
	x, y, w, h int
	c          rgb
}

// shape is the silhouette of a moving object. Every shape has a band of
// full width, so the sprite's leftmost and rightmost columns are opaque and
// "the sprite's box is in the picture" means "the object is seen".
type shape int

const (
	shapePerson  shape = iota // head, torso with arms, two legs
	shapeCoat                 // head, flared coat, arms out, feet
	shapeCyclist              // rider over two wheels
	shapePram                 // an ellipse: a pram, a trolley, a crouching figure
	nShapes
)

func (s shape) String() string {
	return [...]string{"person", "coat", "cyclist", "pram"}[s]
}

// mover is an object crossing the picture horizontally at constant speed:
// x(t) = x0 + v*(t - t0), canvas pixels, with a small vertical bob.
type mover struct {
	shape          shape
	w, h           int // sprite size, even
	x0, v, t0      float64
	y0             int // top at rest
	bobA, bobF     float64
	head, top, bot rgb
}

// x is where ffmpeg's overlay puts the sprite at frame n: the same
// expression, then truncated to an even column for yuv420p.
func (m *mover) x(n int) int {
	x := m.x0 + m.v*(frameTime(n)-m.t0)
	return int(x) &^ 1
}

func (m *mover) xExpr() string {
	return fmt.Sprintf("%s+%s*(t-%s)", num(m.x0), num(m.v), num(m.t0))
}

func (m *mover) yExpr() string {
	if m.bobA == 0 {
		return strconv.Itoa(m.y0)
	}
	return fmt.Sprintf("%d+%s*sin(2*PI*%s*(t-%s))", m.y0, num(m.bobA), num(m.bobF), num(m.t0))
}

// leaf is a blob of foliage swaying about its rest position.
type leaf struct {
	w, h          int
	x, y          int // rest position, canvas pixels
	ax, ay        float64
	f, ph, fg, pg float64 // sway and gust frequencies and phases
	c             rgb
}

// light holds eq expressions of t (brightness, contrast, saturation,
// gamma of red and blue); empty means the eq default.
type light struct {
	brightness, contrast, saturation, gammaR, gammaB string
}

func (l light) none() bool {
	return l == light{}
}

type rain struct {
	seed      int
	threshold int     // of uniform noise in [77, 175]: above it a cell is a drop
	length    int     // streak length, pixels
	opacity   float64 // of the streaks over the picture
}

// shake is a set of episodes during which the camera wobbles.
type shake struct {
	episodes []wobble
}

type wobble struct {
	start, end     float64
	ax, ay         float64 // amplitude, pixels
	f1, f2, p1, p2 float64
}

// offset is the crop position ffmpeg computes at frame n: the expression
// rounded to nearest, clamped, aligned to even columns/rows for yuv420p.
func (s *shake) offset(n, margin int, horizontal bool) int {
	v := s.eval(frameTime(n), margin, horizontal)
	o := int(math.RoundToEven(v))
	o = max(0, min(2*margin, o))
	return o &^ 1
}

func (s *shake) eval(t float64, margin int, horizontal bool) float64 {
	v := float64(margin)
	for _, e := range s.episodes {
		a, f1, f2, p1, p2 := e.ax, e.f1, e.f2, e.p1, e.p2
		if !horizontal {
			a, f1, f2, p1, p2 = e.ay, e.f2, e.f1, e.p2, e.p1
		}
		w := 0.0
		if t >= e.start && t <= e.end {
			w = a * math.Sin(math.Pi*(t-e.start)/(e.end-e.start)) *
				(0.7*math.Sin(2*math.Pi*f1*t+p1) + 0.3*math.Sin(2*math.Pi*f2*t+p2))
		}
		v = v + w
	}
	return v
}

func (s *shake) expr(margin int, horizontal bool) string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(margin))
	for _, e := range s.episodes {
		a, f1, f2, p1, p2 := e.ax, e.f1, e.f2, e.p1, e.p2
		if !horizontal {
			a, f1, f2, p1, p2 = e.ay, e.f2, e.f1, e.p2, e.p1
		}
		fmt.Fprintf(&b, "+if(between(t,%s,%s),%s*sin(PI*(t-%s)/(%s-%s))*(0.7*sin(2*PI*%s*t+%s)+0.3*sin(2*PI*%s*t+%s)),0)",
			num(e.start), num(e.end), num(a), num(e.start), num(e.end), num(e.start),
			num(f1), num(p1), num(f2), num(p2))
	}
	return b.String()
}

// num formats a parameter so that ffmpeg parses back the very float64
// the ground truth was computed with.
func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// visible is the frame-level ground truth: some mover's sprite box
// intersects the picture (the crop window when the camera shakes).
func (sc *scene) visible() []bool {
	vis := make([]bool, sc.frames)
	for n := range vis {
		cx, cy := sc.margin, sc.margin
		if sc.shake != nil {
			cx = sc.shake.offset(n, sc.margin, true)
			cy = sc.shake.offset(n, sc.margin, false)
		}
		for i := range sc.movers {
			m := &sc.movers[i]
			x := m.x(n)
			if x < cx+sc.w && x+m.w > cx && m.y0 < cy+sc.h && m.y0+m.h > cy {
				vis[n] = true
				break
			}
		}
	}
	return vis
}

// truth checks the scene's assumptions and derives its ground truth.
func (sc *scene) truth() (Truth, error) {
	for i, m := range sc.movers {
		// Vertically the sprite stays wholly inside the picture, so only
		// the horizontal position decides whether it is seen.
		bob := int(math.Ceil(m.bobA)) + 2
		if m.y0-bob < 2*sc.margin || m.y0+m.h+bob > sc.h {
			return Truth{}, fmt.Errorf("mover %d (y %d, h %d) leaves the picture vertically", i, m.y0, m.h)
		}
		if m.x(0)+m.w > 0 && m.x(0) < sc.w+2*sc.margin {
			return Truth{}, fmt.Errorf("mover %d is in the picture at the first frame", i)
		}
		if last := sc.frames - 1; m.x(last)+m.w > 0 && m.x(last) < sc.w+2*sc.margin {
			return Truth{}, fmt.Errorf("mover %d is still in the picture at the last frame", i)
		}
		if len(sc.mask) > 0 {
			// Movers walk below the masked zone: the mask never hides them.
			top := sc.h
			for _, p := range sc.mask {
				top = min(top, p[1])
			}
			bottom := 0
			for _, p := range sc.mask {
				bottom = max(bottom, p[1])
			}
			if m.y0-bob-sc.margin < bottom && m.y0+m.h+bob-sc.margin > top {
				return Truth{}, fmt.Errorf("mover %d crosses the masked zone", i)
			}
		}
	}
	t := Truth{Events: eventsOf(sc.visible())}
	if len(sc.mask) > 0 {
		t.Masks = [][]Point{sc.mask}
	}
	if len(t.Events) == 0 && len(sc.movers) > 0 {
		return Truth{}, errors.New("movers but no event")
	}
	return t, nil
}

// --- randomness ---

// rnd draws a scene's parameters. Each scene has its own stream, from the
// seed and the scene's name, so one clip can be made alone (--only) and
// comes out the same as within the whole set.
type rnd struct{ *rand.Rand }

func newRnd(seed uint64, name string) rnd {
	h := fnv.New64a()
	h.Write([]byte(name))
	return rnd{rand.New(rand.NewPCG(seed, h.Sum64()))}
}

// uniform returns a value in [a, b) rounded to 1/1000.
func (r rnd) uniform(a, b float64) float64 {
	return math.Round((a+(b-a)*r.Float64())*1000) / 1000
}

// between returns an int in [a, b].
func (r rnd) between(a, b int) int { return a + r.IntN(b-a+1) }

func (r rnd) sign() float64 {
	if r.IntN(2) == 0 {
		return -1
	}
	return 1
}

func (r rnd) seed() int { return r.IntN(1 << 30) }

func even(v float64) int { return int(math.Round(v/2)) * 2 }
