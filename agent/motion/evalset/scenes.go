package evalset

import (
	"fmt"
	"math"
	"slices"
)

// fullSet is the evaluation set: every scene of the issue, both sizes.
func fullSet(seed uint64) []*scene {
	return []*scene{
		stillScene(seed, "still-360", 640, 360, 120, true),
		stillScene(seed, "still-1080", 1920, 1080, 45, false),
		crossScene(seed, "walk-360", 640, 360, 60, "walking at walking speed", near, walk, 3),
		crossScene(seed, "walk-1080", 1920, 1080, 40, "walking at walking speed", near, walk, 2),
		crossScene(seed, "run-360", 640, 360, 45, "running", near, run, 3),
		crossScene(seed, "distant-360", 640, 360, 60, "small and distant, walking", far, walk, 2),
		pairScene(seed, "two-360", 640, 360, 60),
		lightsScene(seed, "lights-360", 640, 360, 90, 4),
		lightsScene(seed, "lights-1080", 1920, 1080, 40, 2),
		driftScene(seed, "drift-360", 640, 360, 120),
		irScene(seed, "ir-360", 640, 360, 60),
		rainScene(seed, "rain-360", 640, 360, 60),
		foliageScene(seed, "foliage-360", 640, 360, 60, 2),
		shakeScene(seed, "shake-360", 640, 360, 60, 3),
		shakeScene(seed, "shake-1080", 1920, 1080, 40, 2),
	}
}

// smallSet is a few short 640x360 clips for make test: crossings at both
// speeds, lights switched, masked foliage and shake, with still time.
func smallSet(seed uint64) []*scene {
	return []*scene{
		crossScene(seed, "small-walk", 640, 360, 20, "walking, then running", near, walk, 1, run),
		lightsScene(seed, "small-lights", 640, 360, 16, 2),
		foliageScene(seed, "small-foliage", 640, 360, 16, 1),
		shakeScene(seed, "small-shake", 640, 360, 16, 1),
	}
}

// --- the scenes ---

func stillScene(seed uint64, name string, w, h int, dur float64, night bool) *scene {
	sc, _ := newScene(seed, name, w, h, 0, night)
	sc.frames = int(dur * FPS)
	sc.about = "static textured background with sensor noise; nothing moves"
	if night {
		sc.about = "static background at night (dim, noisier); nothing moves"
	}
	return sc
}

// crossScene has n objects crossing one after the other; extra speeds
// (if any) replace the speed of the later crossings.
func crossScene(seed uint64, name string, w, h int, minDur float64, what string, d depth, sp speed, n int, extra ...speed) *scene {
	sc, r := newScene(seed, name, w, h, 0, false)
	var groups [][]mover
	for i := range n + len(extra) {
		s := sp
		if i >= n {
			s = extra[i-n]
		}
		groups = append(groups, []mover{sc.newMover(r, d, s, r.sign())})
	}
	sc.schedule(r, groups, minDur)
	sc.about = fmt.Sprintf("%s crossing one at a time, %s", count(len(groups), "object"), what)
	return sc
}

// pairScene has two objects in the picture at once, twice: passing each
// other in opposite directions, then walking the same way at two depths.
func pairScene(seed uint64, name string, w, h int, minDur float64) *scene {
	sc, r := newScene(seed, name, w, h, 0, false)
	dir := r.sign()
	a, b := sc.newMover(r, mid, walk, dir), sc.newMover(r, near, walk, -dir)
	b.t0 = r.uniform(0.2, 0.5) * sc.crossTime(&a)
	c, d := sc.newMover(r, far, walk, dir), sc.newMover(r, near, walk, dir)
	d.t0 = r.uniform(0.1, 0.4) * sc.crossTime(&c)
	sc.schedule(r, [][]mover{{a, b}, {c, d}}, minDur)
	sc.about = "two objects in the picture at once: passing each other, then walking the same way at two depths"
	return sc
}

func lightsScene(seed uint64, name string, w, h int, dur float64, switches int) *scene {
	sc, r := newScene(seed, name, w, h, 0, false)
	sc.frames = int(dur * FPS)
	sep := min(8, dur/float64(switches+1))
	times := spread(r, switches, dur, sep, sep*0.75, sep)
	b := r.uniform(0.12, 0.22)
	c := r.uniform(0.1, 0.25)
	s := r.uniform(0.2, 0.4)
	ae := r.uniform(0.3, 0.6)
	tau := r.uniform(0.6, 2)
	dirn := r.sign() // first switch: lights off (-1) or on (+1)
	var br, ct, sat string
	for i, t := range times {
		sg := dirn
		if i%2 == 1 {
			sg = -dirn
		}
		ramp := r.uniform(0.04, 0.2)
		term := fmt.Sprintf("gte(t,%s)*min(1,(t-%s)/%s)*(1-%s*(1-exp(-max(0,t-%s)/%s)))",
			num(t), num(t), num(ramp), num(ae), num(t), num(tau))
		br += fmt.Sprintf("+%s*%s", num(sg*b), term)
		ct += fmt.Sprintf("+%s*%s", num(sg*c), term)
		sat += fmt.Sprintf("+%s*%s", num(sg*s), term)
	}
	sc.light = light{brightness: "0" + br, contrast: "1" + ct, saturation: "1" + sat}
	sc.about = fmt.Sprintf("lights switched %s (sudden, with the camera's exposure catching up); nothing moves", count(switches, "time"))
	return sc
}

func driftScene(seed uint64, name string, w, h int, dur float64) *scene {
	sc, r := newScene(seed, name, w, h, 0, false)
	sc.frames = int(dur * FPS)
	a1, p1, f1 := r.uniform(0.06, 0.12), r.uniform(50, 140), r.uniform(0, 6.28)
	a2 := r.uniform(-0.1, 0.1)
	br := fmt.Sprintf("%s*sin(2*PI*t/%s+%s)+%s*(t/%s-0.5)", num(a1), num(p1), num(f1), num(a2), num(dur))
	for _, tc := range spread(r, 2, dur, 20, 10, 10) {
		br += fmt.Sprintf("-%s*exp(-pow((t-%s)/%s,2))", num(r.uniform(0.08, 0.15)), num(tc), num(r.uniform(2.5, 6)))
	}
	g, p2, f2 := r.uniform(0.05, 0.12), r.uniform(40, 120), r.uniform(0, 6.28)
	sc.light = light{
		brightness: br,
		contrast:   fmt.Sprintf("1+%s*sin(2*PI*t/%s+%s)", num(r.uniform(0.03, 0.08)), num(p1), num(f1)),
		gammaR:     fmt.Sprintf("1+%s*sin(2*PI*t/%s+%s)", num(g), num(p2), num(f2)),
		gammaB:     fmt.Sprintf("1-%s*sin(2*PI*t/%s+%s)", num(g), num(p2), num(f2)),
	}
	sc.about = "light drifting slowly (sun, passing clouds, colour temperature); nothing moves"
	return sc
}

func irScene(seed uint64, name string, w, h int, dur float64) *scene {
	sc, r := newScene(seed, name, w, h, 0, false)
	sc.frames = int(dur * FPS)
	dusk := r.uniform(10, 20)
	t1 := r.uniform(dusk+5, dur*0.55)
	t2 := r.uniform(t1+10, dur-8)
	d, j, c := r.uniform(0.12, 0.2), r.uniform(0.15, 0.3), r.uniform(1.1, 1.3)
	ir := fmt.Sprintf("gte(t,%s)*lt(t,%s)", num(t1), num(t2))
	sc.light = light{
		brightness: fmt.Sprintf("lt(t,%s)*(-%s*clip((t-%s)/%s,0,1))+%s*%s", num(t2), num(d), num(t1-dusk), num(dusk), num(j), ir),
		contrast:   fmt.Sprintf("1+%s*%s", num(c-1), ir),
		saturation: fmt.Sprintf("1-%s", ir),
	}
	sc.about = fmt.Sprintf("dusk, then the camera switches to infrared (grayscale, brighter) at %.1f s and back to colour at %.1f s; nothing moves", t1, t2)
	return sc
}

func rainScene(seed uint64, name string, w, h int, minDur float64) *scene {
	sc, r := newScene(seed, name, w, h, 0, false)
	sc.rain = &rain{
		seed:      r.seed(),
		threshold: r.between(171, 173),
		length:    max(2, int(math.Round(r.uniform(6, 14)*sc.scale))),
		opacity:   r.uniform(0.25, 0.45),
	}
	sc.light = light{brightness: num(-r.uniform(0.02, 0.06))}
	m := sc.newMover(r, near, walk, r.sign())
	sc.scheduleLead(r, [][]mover{{m}}, minDur, r.uniform(20, minDur/2))
	sc.about = "rain streaks all along; one object crosses in the second half"
	return sc
}

func foliageScene(seed uint64, name string, w, h int, minDur float64, n int) *scene {
	sc, r := newScene(seed, name, w, h, 0, false)
	s := sc.scale
	yh := sc.horizon
	// A tree whose crown sways above the street; the trunk is still.
	cx := r.uniform(110, 530)
	ry := r.uniform(30, 45)
	cy := r.uniform(ry+15, yh-ry-25)
	rx := r.uniform(55, 90)
	trunk := rgb{r.between(50, 75), r.between(40, 55), r.between(30, 40)}
	sc.bg.boxes = append(sc.bg.boxes, sc.designBox(cx-5, cy, 10, yh+30-cy, trunk))
	nLeaves := r.between(10, 16)
	minX, minY, maxX, maxY := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for range nLeaves {
		ang, rad := r.uniform(0, 2*math.Pi), math.Sqrt(r.Float64())
		lw, lh := r.uniform(24, 50), r.uniform(18, 36)
		lx := cx + rad*rx*math.Cos(ang) - lw/2
		ly := cy + rad*ry*math.Sin(ang) - lh/2
		ax := r.uniform(2, 7)
		l := leaf{
			w: even(lw * s), h: even(lh * s),
			x: sc.margin + even(lx*s), y: sc.margin + even(ly*s),
			ax: math.Round(ax*s*10) / 10, ay: math.Round(ax*0.4*s*10) / 10,
			f: r.uniform(0.4, 1.3), ph: r.uniform(0, 6.28),
			fg: r.uniform(0.05, 0.2), pg: r.uniform(0, 6.28),
			c: rgb{r.between(40, 90), r.between(70, 130), r.between(30, 60)},
		}
		sc.leaves = append(sc.leaves, l)
		minX = min(minX, float64(l.x)-l.ax)
		maxX = max(maxX, float64(l.x+l.w)+l.ax)
		minY = min(minY, float64(l.y)-l.ay)
		maxY = max(maxY, float64(l.y+l.h)+l.ay)
	}
	pad := 8 * s
	sc.mask = octagon(minX-pad-float64(sc.margin), minY-pad-float64(sc.margin),
		maxX+pad-float64(sc.margin), maxY+pad-float64(sc.margin), sc.w, sc.h)
	var groups [][]mover
	for range n {
		groups = append(groups, []mover{sc.newMover(r, near, walk, r.sign())})
	}
	sc.schedule(r, groups, minDur)
	sc.about = fmt.Sprintf("a tree swaying in the wind inside a masked zone; %s crossing below it", count(n, "object"))
	return sc
}

func shakeScene(seed uint64, name string, w, h int, minDur float64, episodes int) *scene {
	// The shake has its own stream: the canvas margin depends on it and
	// must be known before the backdrop and movers are drawn.
	rs := newRnd(seed, name+"/shake")
	scale := float64(w) / designW
	var ws []wobble
	maxA := 0.0
	for range episodes {
		ax := rs.uniform(2, 6) * scale
		e := wobble{
			ax: math.Round(ax*10) / 10, ay: math.Round(ax*rs.uniform(0.3, 0.8)*10) / 10,
			f1: rs.uniform(1.5, 4), f2: rs.uniform(5, 9), p1: rs.uniform(0, 6.28), p2: rs.uniform(0, 6.28),
		}
		maxA = max(maxA, e.ax, e.ay)
		ws = append(ws, e)
	}
	sc, r := newScene(seed, name, w, h, even(maxA+3), false)
	m := sc.newMover(r, near, walk, r.sign())
	sc.schedule(r, [][]mover{{m}}, minDur)
	dur := sc.duration()
	// The first episode starts while the object crosses; the others fall
	// anywhere, still time included.
	cross := sc.movers[0]
	for i := range ws {
		length := rs.uniform(3, 8)
		if i == 0 {
			ws[i].start = math.Round((cross.t0+rs.uniform(0.1, 0.6)*sc.crossTime(&cross))*1000) / 1000
		} else {
			ws[i].start = rs.uniform(0.5, dur-length-0.5)
		}
		ws[i].end = math.Round(min(ws[i].start+length, dur-0.5)*1000) / 1000
	}
	sc.shake = &shake{episodes: ws}
	sc.about = "camera shake (wind, traffic) while an object crosses"
	if episodes > 1 {
		sc.about = fmt.Sprintf("camera shake (wind, traffic) %s, the first while an object crosses", count(episodes, "time"))
	}
	return sc
}

// --- building blocks ---

func count(n int, noun string) string {
	switch n {
	case 1:
		if noun == "time" {
			return "once"
		}
		return "one " + noun
	case 2:
		if noun == "time" {
			return "twice"
		}
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

type depth int

const (
	near depth = iota
	mid
	far
)

type speed int

const (
	walk speed = iota
	run
)

// newScene starts a scene with its own random stream and a backdrop: a
// street with buildings, windows, a pavement and road markings. margin is
// the canvas border for shake.
func newScene(seed uint64, name string, w, h, margin int, night bool) (*scene, rnd) {
	r := newRnd(seed, name)
	sc := &scene{name: name, w: w, h: h, scale: float64(w) / designW, margin: margin}
	s := sc.scale
	sc.horizon = r.uniform(135, 165)
	yh := sc.horizon

	tint := func(l int, sat float64) rgb {
		a := r.uniform(0, 2*math.Pi)
		d := sat * float64(l)
		return rgb{clamp8(float64(l) + d*math.Cos(a)), clamp8(float64(l) + d*math.Cos(a-2.1)), clamp8(float64(l) + d*math.Cos(a+2.1))}
	}
	dim := 1.0
	if night {
		dim = 0.55
	}
	lum := func(a, b int) int { return int(float64(r.between(a, b)) * dim) }

	sc.bg.base = tint(lum(120, 175), 0.08)
	// Buildings along the top, edge to edge (the canvas margin included).
	for x := -float64(margin)/s - 10; x < designW+float64(margin)/s+10; {
		bw := r.uniform(110, 260)
		top := r.uniform(5, yh-70)
		col := tint(lum(80, 170), 0.12)
		sc.bg.boxes = append(sc.bg.boxes, sc.designBox(x, top, bw-r.uniform(0, 12), yh-top, col))
		// Windows: a grid, some lit.
		rows, cols := r.between(2, 4), r.between(2, 5)
		ww, wh := r.uniform(12, 22), r.uniform(16, 28)
		for i := range rows {
			for j := range cols {
				wx := x + (float64(j)+0.5)*bw/float64(cols) - ww/2
				wy := top + 12 + float64(i)*(wh+r.uniform(10, 18))
				if wy+wh > yh-12 || wx+ww > x+bw-8 {
					continue
				}
				wc := tint(lum(25, 60), 0.1)
				if r.IntN(4) == 0 {
					wc = tint(lum(150, 200), 0.15)
				}
				sc.bg.boxes = append(sc.bg.boxes, sc.designBox(wx, wy, ww, wh, wc))
			}
		}
		x += bw
	}
	// Pavement, kerb, road, lane markings, a pole or two.
	pave := r.uniform(18, 40)
	sc.ground = tint(lum(70, 110), 0.04)
	sc.bg.boxes = append(sc.bg.boxes,
		sc.designBox(-100, yh, designW+200, pave, tint(lum(105, 150), 0.05)),
		sc.designBox(-100, yh+pave, designW+200, 3, tint(lum(60, 90), 0.03)),
		sc.designBox(-100, yh+pave+3, designW+200, designH+100, sc.ground))
	my := r.uniform(yh+pave+60, designH-40)
	for x := r.uniform(-60, 0); x < designW+60; x += r.uniform(90, 130) {
		sc.bg.boxes = append(sc.bg.boxes, sc.designBox(x, my, r.uniform(35, 55), 4, tint(lum(150, 190), 0.02)))
	}
	for range r.between(0, 2) {
		px, ph := r.uniform(20, 620), r.uniform(60, 120)
		sc.bg.boxes = append(sc.bg.boxes, sc.designBox(px, yh-ph, 5, ph+pave-2, tint(lum(35, 60), 0.03)))
	}
	sc.bg.texSeed = [3]int{r.seed(), r.seed(), r.seed()}
	sc.bg.texLow = r.between(35, 60)
	sc.bg.texFine = r.between(8, 16)
	sc.bg.blur = math.Round(r.uniform(0.5, 0.9)*s*100) / 100
	sc.noise = r.between(5, 8)
	if night {
		sc.noise = r.between(10, 13)
	}
	sc.noiseSeed = r.seed()
	return sc, r
}

// designBox converts a rectangle in design units to canvas pixels.
func (sc *scene) designBox(x, y, w, h float64, c rgb) box {
	s := sc.scale
	return box{x: int(math.Round(x*s)) + sc.margin, y: int(math.Round(y*s)) + sc.margin,
		w: max(1, int(math.Round(w*s))), h: max(1, int(math.Round(h*s))), c: c}
}

func clamp8(v float64) int { return int(max(0, min(255, math.Round(v)))) }

// newMover makes an object at a depth (its feet on the ground below the
// horizon, its size by perspective) moving at a speed in direction dir;
// t0 is left 0 for schedule to set.
func (sc *scene) newMover(r rnd, d depth, sp speed, dir float64) mover {
	// Pixels per metre (design units) and where the feet are: the ground
	// rises to the horizon with distance.
	var ppm float64
	switch d {
	case near:
		ppm = r.uniform(48, 60)
	case mid:
		ppm = r.uniform(32, 44)
	default:
		ppm = r.uniform(20, 25)
	}
	feet := sc.horizon + 3*ppm
	sh := shapePerson
	switch p := r.Float64(); {
	case p < 0.6:
	case p < 0.8:
		sh = shapeCoat
	case p < 0.9:
		sh = shapeCyclist
	default:
		sh = shapePram
	}
	var hm, wm float64
	switch sh {
	case shapePerson:
		hm, wm = r.uniform(1.6, 1.9), r.uniform(0.5, 0.62)
	case shapeCoat:
		hm, wm = r.uniform(1.6, 1.85), r.uniform(0.55, 0.7)
	case shapeCyclist:
		hm, wm = r.uniform(1.6, 1.8), r.uniform(1.6, 1.8)
	case shapePram:
		hm, wm = r.uniform(0.9, 1.1), r.uniform(0.8, 1.0)
	}
	v := r.uniform(1.1, 1.7) // m/s
	bobF := r.uniform(1.7, 2.2)
	if sp == run {
		v, bobF = r.uniform(2.8, 4.5), r.uniform(2.6, 3.2)
	}
	if sh == shapeCyclist {
		v, bobF = v*1.8, 0
	}
	s := sc.scale
	m := mover{
		shape: sh,
		w:     max(2, even(wm*ppm*s)), h: max(2, even(hm*ppm*s)),
		bobF: bobF,
	}
	m.bobA = math.Round(0.012*float64(m.h)*10) / 10
	if sh == shapeCyclist || sh == shapePram {
		m.bobA = 0
	}
	m.y0 = sc.margin + even(feet*s) - m.h
	m.v = math.Round(dir*v*ppm*s*1000) / 1000
	if dir > 0 {
		m.x0 = float64(sc.margin - m.w - 2)
	} else {
		m.x0 = float64(sc.margin + sc.w + 2)
	}
	// Colours that stand out from the road, but not glaringly.
	gy, _, _ := sc.ground.yuv()
	part := func() rgb {
		l := r.between(30, gy-35)
		if gy-35 < 30 || (gy+35 <= 210 && r.IntN(2) == 0) {
			l = r.between(gy+35, 210)
		}
		a := r.uniform(0, 2*math.Pi)
		d := r.uniform(0, 0.25) * float64(l)
		return rgb{clamp8(float64(l) + d*math.Cos(a)), clamp8(float64(l) + d*math.Cos(a-2.1)), clamp8(float64(l) + d*math.Cos(a+2.1))}
	}
	skin := r.uniform(0, 1)
	m.head = rgb{clamp8(90 + 140*skin), clamp8(60 + 110*skin), clamp8(45 + 90*skin)}
	m.top, m.bot = part(), part()
	return m
}

// crossTime is how long m takes from just outside one edge of the canvas
// to just outside the other.
func (sc *scene) crossTime(m *mover) float64 {
	return float64(sc.w+2*sc.margin+m.w+4) / math.Abs(m.v)
}

func (sc *scene) duration() float64 { return float64(sc.frames) / FPS }

// schedule places groups of movers one after another with still time
// before, between and after (at least 6 s, 5 s and 6 s), stretching the
// still time at random until the clip lasts minDur. Within a group, t0
// holds each mover's offset from the group's start.
func (sc *scene) schedule(r rnd, groups [][]mover, minDur float64) {
	sc.scheduleLead(r, groups, minDur, 6)
}

func (sc *scene) scheduleLead(r rnd, groups [][]mover, minDur, lead float64) {
	const gap, trail = 5.0, 6.0
	spans := make([]float64, len(groups))
	total := lead + trail + gap*float64(len(groups)-1)
	for i, g := range groups {
		for j := range g {
			spans[i] = max(spans[i], g[j].t0+sc.crossTime(&g[j]))
		}
		total += spans[i]
	}
	// Share the spare time between the still stretches.
	spare := max(0, minDur-total)
	weights := make([]float64, len(groups)+1)
	sum := 0.0
	for i := range weights {
		weights[i] = 0.2 + r.Float64()
		sum += weights[i]
	}
	at := lead + spare*weights[0]/sum
	for i, g := range groups {
		for _, m := range g {
			m.t0 = math.Round((at+m.t0)*1000) / 1000
			sc.movers = append(sc.movers, m)
		}
		at += spans[i] + gap + spare*weights[i+1]/sum
	}
	sc.frames = int(math.Ceil(max(minDur, total) * FPS))
	// Far objects first, so nearer ones pass in front.
	slices.SortStableFunc(sc.movers, func(a, b mover) int { return (a.y0 + a.h) - (b.y0 + b.h) })
}

// spread returns n sorted times in [lead, dur-trail] at least sep apart.
func spread(r rnd, n int, dur, sep, lead, trail float64) []float64 {
	slack := max(0, dur-lead-trail-sep*float64(n-1))
	us := make([]float64, n)
	for i := range us {
		us[i] = r.Float64() * slack
	}
	slices.Sort(us)
	for i := range us {
		us[i] = math.Round((lead+us[i]+sep*float64(i))*1000) / 1000
	}
	return us
}

// octagon is a rectangle with cut corners, clipped to the frame.
func octagon(x0, y0, x1, y1 float64, w, h int) []Point {
	c := 0.25 * min(x1-x0, y1-y0)
	pts := [][2]float64{{x0 + c, y0}, {x1 - c, y0}, {x1, y0 + c}, {x1, y1 - c}, {x1 - c, y1}, {x0 + c, y1}, {x0, y1 - c}, {x0, y0 + c}}
	out := make([]Point, 0, len(pts))
	for _, p := range pts {
		out = append(out, Point{int(max(0, min(float64(w), math.Round(p[0])))), int(max(0, min(float64(h), math.Round(p[1]))))})
	}
	return out
}
