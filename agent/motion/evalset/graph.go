package evalset

import (
	"fmt"
	"strings"
)

// graph builds the filter graph. The backdrop is rendered once (one frame)
// and looped; sprites are single frames the overlay repeats; everything
// after that runs per frame: overlays at positions that are expressions of
// t, crop for shake, rain, eq for light, sensor noise.
func (sc *scene) graph(plain bool) string {
	cw, ch := sc.w+2*sc.margin, sc.h+2*sc.margin
	var g strings.Builder
	chain := func(format string, a ...any) {
		if g.Len() > 0 {
			g.WriteString(";\n")
		}
		fmt.Fprintf(&g, format, a...)
	}

	// The still backdrop, looped; trim bounds the whole graph. The time
	// base is 1/FPS, so pts N is frame N exactly (N/25/TB is not: it
	// rounds some frames down onto the previous pts).
	still := fmt.Sprintf("loop=loop=-1:size=1,setpts=N,trim=end_frame=%d", sc.frames)
	if plain {
		chain("color=c=black:s=%dx%d:r=%d:d=0.04,format=yuv420p,%s[c0]", cw, ch, FPS, still)
	} else {
		chain("%s,format=yuv420p,%s[c0]", sc.backdropChain(cw, ch), still)
	}
	cur := "c0"
	layer := 0
	over := func(sprite, x, y string) {
		layer++
		chain("%s[s%d]", sprite, layer)
		next := fmt.Sprintf("c%d", layer)
		chain("[%s][s%d]overlay=x='%s':y='%s':eval=frame[%s]", cur, layer, x, y, next)
		cur = next
	}
	if !plain {
		for _, l := range sc.leaves {
			over(l.sprite(), l.xExpr(), l.yExpr())
		}
	}
	for i := range sc.movers {
		m := &sc.movers[i]
		over(m.sprite(plain), m.xExpr(), m.yExpr())
	}

	var post []string
	if sc.shake != nil {
		post = append(post, fmt.Sprintf("crop=w=%d:h=%d:x='%s':y='%s'", sc.w, sc.h,
			sc.shake.expr(sc.margin, true), sc.shake.expr(sc.margin, false)))
	}
	if plain {
		chain("[%s]%sformat=yuv420p[v]", cur, joinComma(post))
		return g.String()
	}
	if sc.rain != nil {
		// Drops: sparse cells of uniform noise on a coarse grid (new every
		// frame), stretched into short vertical streaks and screened over
		// the picture.
		r := sc.rain
		chain("[%s]%sformat=yuv420p[pre]", cur, joinComma(post))
		chain("color=c=0x808080:s=%dx%d:r=%d,format=yuv420p,trim=end_frame=%d,"+
			"noise=c0s=100:c0f=t+u:c0_seed=%d,lutyuv=y='if(gt(val,%d),255,0)':u=128:v=128,"+
			"scale=%d:%d:flags=neighbor,avgblur=sizeX=1:sizeY=1[rain]",
			sc.w/2, even(float64(sc.h)/float64(r.length)), FPS, sc.frames, r.seed, r.threshold, sc.w, sc.h)
		chain("[pre][rain]blend=c0_mode=screen:c0_opacity=%s:c1_mode=normal:c2_mode=normal[wet]", num(r.opacity))
		cur, post = "wet", nil
	}
	if !sc.light.none() {
		l := sc.light
		var opts []string
		// A gamma off 1 keeps eq on its exact lookup-table path: otherwise
		// it passes frames through at brightness 0 and contrast 1 and
		// else rounds brightness to 1/100, steps of its own making.
		gamma := "1.001"
		for _, o := range []struct{ k, v string }{
			{"brightness", l.brightness}, {"gamma", gamma}, {"contrast", l.contrast}, {"saturation", l.saturation},
			{"gamma_r", l.gammaR}, {"gamma_b", l.gammaB},
		} {
			if o.v != "" {
				opts = append(opts, fmt.Sprintf("%s='%s'", o.k, o.v))
			}
		}
		post = append(post, "eq="+strings.Join(opts, ":")+":eval=frame")
	}
	if sc.noise > 0 {
		post = append(post, fmt.Sprintf("noise=c0s=%d:c1s=%d:c2s=%d:allf=t:all_seed=%d",
			sc.noise, sc.noise/3, sc.noise/3, sc.noiseSeed))
	}
	chain("[%s]%sformat=yuv420p[v]", cur, joinComma(post))
	return g.String()
}

func joinComma(filters []string) string {
	if len(filters) == 0 {
		return ""
	}
	return strings.Join(filters, ",") + ","
}

// backdropChain renders the still picture as one frame: flat shapes, then
// large soft blotches and fine static grain (noise without the t flag does
// not change between frames), a lens vignette and a little blur.
func (sc *scene) backdropChain(cw, ch int) string {
	b := sc.bg
	var g strings.Builder
	fmt.Fprintf(&g, "color=c=%s:s=%dx%d:r=%d:d=0.04,format=yuv444p", b.base.hex(), cw, ch, FPS)
	for _, x := range b.boxes {
		fmt.Fprintf(&g, ",drawbox=x=%d:y=%d:w=%d:h=%d:color=%s:t=fill", x.x, x.y, x.w, x.h, x.c.hex())
	}
	g.WriteString("[flat];\n")
	lw, lh := max(8, cw/24), max(6, ch/24)
	fmt.Fprintf(&g, "color=c=0x808080:s=%dx%d:r=%d:d=0.04,format=yuv444p,noise=c0s=%d:c1s=%d:c2s=%d:all_seed=%d,scale=%d:%d:flags=bicubic[blot];\n",
		lw, lh, FPS, b.texLow, b.texLow/6, b.texLow/6, b.texSeed[0], cw, ch)
	mw, mh := max(16, cw/6), max(9, ch/6)
	fmt.Fprintf(&g, "color=c=0x808080:s=%dx%d:r=%d:d=0.04,format=yuv444p,noise=c0s=%d:all_seed=%d,scale=%d:%d:flags=bilinear[mid];\n",
		mw, mh, FPS, b.texLow/2, b.texSeed[1], cw, ch)
	fmt.Fprintf(&g, "[blot][mid]blend=all_mode=average[tex];\n")
	fmt.Fprintf(&g, "[flat][tex]blend=all_mode=overlay:c1_opacity=0.5:c2_opacity=0.5,"+
		"noise=c0s=%d:c1s=%d:c2s=%d:all_seed=%d,vignette=angle=PI/5,gblur=sigma=%s",
		b.texFine, b.texFine/4, b.texFine/4, b.texSeed[2], num(b.blur))
	return g.String()
}

// Relative coordinates of a geq pixel centre: u across, v down, in [0,1).
const (
	gu = "((X+0.5)/W)"
	gv = "((Y+0.5)/H)"
)

func in(v, a, b string) string { return fmt.Sprintf("between(%s,%s,%s)", v, a, b) }

func ellipse(cu, cv, ru, rv string) string {
	return fmt.Sprintf("lte(pow((%s-%s)/%s,2)+pow((%s-%s)/%s,2),1)", gu, cu, ru, gv, cv, rv)
}

// parts returns the head, upper and lower regions of a shape as geq
// conditions (0 or 1), each a sum of disjoint-enough pieces.
func (s shape) parts() (head, top, bot string) {
	switch s {
	case shapeCoat:
		head = ellipse("0.5", "0.075", "0.17", "0.07")
		top = fmt.Sprintf("(%s*lt(abs(%s-0.5),0.26+0.16*(%s-0.14)/0.7)+%s)",
			in(gv, "0.14", "0.84"), gu, gv, in(gv, "0.3", "0.42"))
		bot = fmt.Sprintf("%s*(%s+%s)", in(gv, "0.84", "1"), in(gu, "0.3", "0.46"), in(gu, "0.54", "0.7"))
	case shapeCyclist:
		head = ellipse("0.55", "0.07", "0.09", "0.065")
		top = fmt.Sprintf("(%s*%s+%s*%s)", in(gv, "0.13", "0.5"), in(gu, "0.42", "0.66"),
			in(gv, "0.42", "0.5"), in(gu, "0.3", "0.8"))
		bot = fmt.Sprintf("(%s+%s+%s*%s)", ellipse("0.19", "0.78", "0.19", "0.22"), ellipse("0.81", "0.78", "0.19", "0.22"),
			in(gv, "0.5", "0.76"), in(gu, "0.36", "0.64"))
	case shapePram:
		head = "0"
		top = fmt.Sprintf("%s*lt(%s,0.55)", ellipse("0.5", "0.5", "0.5", "0.5"), gv)
		bot = fmt.Sprintf("%s*gte(%s,0.55)", ellipse("0.5", "0.5", "0.5", "0.5"), gv)
	default: // shapePerson
		head = ellipse("0.5", "0.075", "0.2", "0.07")
		top = fmt.Sprintf("(%s*lt(abs(%s-0.5),0.3)+%s)", in(gv, "0.14", "0.19"), gu, in(gv, "0.19", "0.56"))
		bot = fmt.Sprintf("%s*(%s+%s)", in(gv, "0.56", "1"), in(gu, "0.12", "0.47"), in(gu, "0.53", "0.88"))
	}
	return head, top, bot
}

// sprite is a one-frame yuva420p source of the object. Plain sprites are
// white with the same alpha.
func (m *mover) sprite(plain bool) string {
	head, top, bot := m.shape.parts()
	alpha := fmt.Sprintf("255*gt(%s+%s+%s,0)", head, top, bot)
	var lum, cb, cr string
	if plain {
		lum, cb, cr = "235", "128", "128"
	} else {
		hy, hu, hv := m.head.yuv()
		ty, tu, tv := m.top.yuv()
		by, bu, bv := m.bot.yuv()
		pick := func(a, b, c int) string {
			return fmt.Sprintf("if(gt(%s,0),%d,if(gt(%s,0),%d,%d))", head, a, top, b, c)
		}
		// Light from one side, a little darker towards the feet.
		lum = fmt.Sprintf("clip(%s+18*(%s-0.5)-10*%s,16,235)", pick(hy, ty, by), gu, gv)
		cb, cr = pick(hu, tu, bu), pick(hv, tv, bv)
	}
	return fmt.Sprintf("color=c=black:s=%dx%d:r=%d:d=0.04,format=yuva420p,geq=lum='%s':cb='%s':cr='%s':a='%s'",
		m.w, m.h, FPS, lum, cb, cr, alpha)
}

func (l *leaf) sprite() string {
	y, u, v := l.c.yuv()
	shape := ellipse("0.5", "0.5", "0.5", "0.5")
	lum := fmt.Sprintf("clip(%d+14*sin(X*0.9+Y*1.7)*sin(Y*0.6-X*0.3)-20*%s,16,235)", y, gv)
	return fmt.Sprintf("color=c=black:s=%dx%d:r=%d:d=0.04,format=yuva420p,geq=lum='%s':cb=%d:cr=%d:a='255*%s'",
		l.w, l.h, FPS, lum, u, v, shape)
}

// gust slows and quickens the sway.
func (l *leaf) gust() string {
	return fmt.Sprintf("(0.6+0.4*sin(2*PI*%s*t+%s))", num(l.fg), num(l.pg))
}

func (l *leaf) xExpr() string {
	return fmt.Sprintf("%d+%s*sin(2*PI*%s*t+%s)*%s", l.x, num(l.ax), num(l.f), num(l.ph), l.gust())
}

func (l *leaf) yExpr() string {
	return fmt.Sprintf("%d+%s*sin(2*PI*%s*t+%s+1)*%s", l.y, num(l.ay), num(l.f), num(l.ph), l.gust())
}
