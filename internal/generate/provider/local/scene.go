package local

import (
	"math"
	"strconv"
)

// scene is a picture described independently of its resolution: the same
// scene renders the same at 64 and at 2048 pixels, which is what lets the
// previews be cheap renders of the very picture the output will be.
type scene struct {
	aspect float64 // width / height
	layers []layer
	seed   uint64 // for the preview noise
}

// shade returns the colour of the scene at p.
func (s *scene) shade(p point) rgb {
	var c rgb
	for _, l := range s.layers {
		c = l.paint(c, p)
	}
	return c
}

// newScene draws the scene for one image of a request. The theme and
// palette depend on the prompt, negative prompt and seed, so that a
// request's images belong together; the layout also depends on index, so
// that they differ.
func newScene(prompt, negative string, seed int64, index, width, height int) *scene {
	pw, nw := readWords(prompt), readWords(negative)
	sd := strconv.FormatInt(seed, 10)
	look := newRNG("look", pw.text, nw.text, sd)
	lay := newRNG("layout", pw.text, nw.text, sd, strconv.Itoa(index))

	th := theme(look.intn(int(themeCount)))
	for _, t := range pw.tokens {
		if named, ok := themeOf(t); ok {
			th = named
			break
		}
	}
	pal := newPalette(pw, nw, look, lay)
	s := &scene{aspect: float64(width) / float64(height), seed: lay.next()}
	b := builder{r: lay, p: pal, aspect: s.aspect}
	switch th {
	case landscape:
		s.layers = b.landscape()
	case ocean:
		s.layers = b.ocean()
	case cosmic:
		s.layers = b.cosmic()
	case bokeh:
		s.layers = b.bokeh()
	case abstract:
		s.layers = b.abstract()
	case waves:
		s.layers = b.waves()
	default:
		s.layers = b.aurora()
	}
	return s
}

// builder composes the layers of each theme from its random stream and
// palette.
type builder struct {
	r      *rng
	p      palette
	aspect float64
}

// sx returns a random x between the fractions lo and hi of the width.
func (b builder) sx(lo, hi float64) float64 { return b.r.between(lo, hi) * b.aspect }

func (b builder) direction() (float64, float64) {
	a := b.r.between(0, 2*math.Pi)
	return math.Cos(a), math.Sin(a)
}

func (b builder) vertical(stops ...rgb) *gradient {
	return &gradient{stops: stops, dx: 0, dy: 1}
}

func (b builder) ridge(base, amp, freqLo, freqHi float64, sharp bool, col rgb, depth, soft float64) *ridge {
	r := &ridge{base: base, amp: amp, sharp: sharp, top: col.scale(1.12).clamp(), bottom: col.scale(0.78), depth: depth, soft: soft}
	weights := [3]float64{1, 0.45, 0.2}
	for i := range r.freq {
		r.freq[i] = b.r.between(freqLo, freqHi) * math.Pow(2.2, float64(i))
		r.phase[i] = b.r.between(0, 2*math.Pi)
		r.weight[i] = weights[i]
	}
	return r
}

func (b builder) sun(horizon float64) *disc {
	return &disc{
		cx: b.sx(0.15, 0.85), cy: b.r.between(0.15, horizon-0.06), r: b.r.between(0.045, 0.1),
		col: b.p.colS(4, 0.5, 0.92), alpha: 1, soft: 0.04,
		glow: b.r.between(0.35, 0.7), glowCol: b.p.colS(4, 0.9, 0.7),
	}
}

func (b builder) landscape() []layer {
	horizon := b.r.between(0.5, 0.68)
	sky := b.p.col(3, 0.8)
	ls := []layer{
		b.vertical(b.p.col(0, 0.3), b.p.shift(0, b.r.between(-25, 25), 0.58), sky),
		&band{y: horizon, width: 0.12, col: b.p.colS(4, 0.8, 0.7), strength: 0.35},
	}
	if b.r.chance(0.85) {
		ls = append(ls, b.sun(horizon))
	}
	if b.r.chance(0.6) {
		ls = append(ls, &clouds{
			seed: b.r.next(), scale: b.r.between(2.5, 4.5), stretch: 2.6, cover: b.r.between(0.5, 0.62),
			col: mix(gray(1), sky, 0.25), thin: b.p.col(1, 0.66), alpha: 0.85, y0: horizon * 0.5, y1: horizon,
		})
	}
	n := 3 + b.r.intn(3)
	land := b.r.intn(5)
	for i := range n {
		t := float64(i) / float64(n-1)
		col := mix(b.p.colS(land, 0.8, 0.3-0.16*t), sky, (1-t)*0.65)
		ls = append(ls, b.ridge(
			horizon+t*(0.93-horizon)*0.85, b.r.between(0.04, 0.12)*(1-0.5*t),
			0.5*(1+t), 1.3*(1+t), i < (n+1)/2 && b.r.chance(0.75),
			col, 0.35, 0.002+0.005*(1-t),
		))
	}
	return append(ls, &vignette{amount: 0.25})
}

func (b builder) ocean() []layer {
	horizon := b.r.between(0.42, 0.6)
	sky := b.p.col(3, 0.82)
	sun := b.sun(horizon)
	sun.cy = horizon - b.r.between(0.04, 0.2)
	ls := []layer{
		b.vertical(b.p.col(0, 0.3), b.p.shift(0, b.r.between(-25, 25), 0.6), sky),
		&band{y: horizon, width: 0.1, col: b.p.colS(4, 0.8, 0.7), strength: 0.45},
		sun,
	}
	if b.r.chance(0.5) {
		ls = append(ls, &clouds{
			seed: b.r.next(), scale: b.r.between(2.5, 4), stretch: 3, cover: b.r.between(0.52, 0.64),
			col: mix(gray(1), sky, 0.3), thin: b.p.col(1, 0.7), alpha: 0.75, y0: horizon * 0.4, y1: horizon,
		})
	}
	sea := b.p.col(2, 0.36)
	ls = append(ls, &ridge{base: horizon, top: mix(sea, sky, 0.35), bottom: sea.scale(0.55), depth: 1 - horizon, soft: 0.001})
	n := 6 + b.r.intn(3)
	for i := range n {
		t := float64(i+1) / float64(n)
		tone := 0.92 + 0.16*float64(i%2)
		col := mix(sea, sky, 0.3*(1-t)).scale(tone * (1 - 0.25*t))
		ls = append(ls, b.ridge(horizon+t*(0.98-horizon)*0.9, b.r.between(0.004, 0.012)*(1+2*t), 3/(1+t), 9/(1+t), false, col, 0.3, 0.002))
	}
	ls = append(ls,
		&glitter{x: sun.cx, horizon: horizon, width: sun.r * 0.8, col: sun.col, seed: b.r.next()},
		&vignette{amount: 0.3},
	)
	return ls
}

func (b builder) cosmic() []layer {
	ls := []layer{
		&gradient{
			stops:  []rgb{b.p.col(0, 0.2), b.p.col(1, 0.08), gray(0.015)},
			radial: true, cx: b.sx(0.2, 0.8), cy: b.r.between(0.2, 0.8), reach: b.r.between(0.8, 1.3),
		},
		&clouds{
			seed: b.r.next(), scale: b.r.between(1.8, 3.2), stretch: 1, cover: b.r.between(0.38, 0.5),
			col: b.p.colS(0, 1.2, 0.5), thin: b.p.colS(3, 1.2, 0.3), alpha: 0.6, y0: 2, y1: 3, additive: true,
		},
	}
	if b.r.chance(0.6) {
		ls = append(ls, &clouds{
			seed: b.r.next(), scale: b.r.between(3, 5), stretch: 1.4, cover: b.r.between(0.5, 0.6),
			col: b.p.colS(2, 1.2, 0.55), thin: b.p.colS(4, 1, 0.25), alpha: 0.45, y0: 2, y1: 3, additive: true,
		})
	}
	ls = append(ls, &stars{seed: b.r.next(), cells: b.r.between(40, 70), density: b.r.between(0.08, 0.16), maxV: 2, col: gray(1)})
	if b.r.chance(0.75) {
		lx, ly := b.direction()
		r := b.r.between(0.1, 0.3)
		ls = append(ls, &disc{
			cx: b.sx(0.15, 0.85), cy: b.r.between(0.2, 0.8), r: r, col: b.p.colS(4, 0.8, 0.58), alpha: 1, soft: 0.01,
			glow: 0.25, glowCol: b.p.col(4, 0.55), lit: true, lx: lx * 0.8, ly: ly * 0.8,
		})
		if b.r.chance(0.4) {
			ls = append(ls, &disc{
				cx: b.sx(0.1, 0.9), cy: b.r.between(0.1, 0.9), r: r * b.r.between(0.15, 0.3), col: b.p.colS(2, 0.4, 0.7),
				alpha: 1, soft: 0.02, lit: true, lx: lx * 0.8, ly: ly * 0.8,
			})
		}
	}
	return append(ls, &vignette{amount: 0.35})
}

func (b builder) bokeh() []layer {
	dx, dy := b.direction()
	ls := []layer{&gradient{stops: []rgb{b.p.col(0, 0.12), b.p.col(1, 0.3), b.p.col(2, 0.16)}, dx: dx, dy: dy}}
	n := 18 + b.r.intn(25)
	for range n {
		f := b.r.float()
		ls = append(ls, &disc{
			cx: b.sx(-0.05, 1.05), cy: b.r.between(-0.05, 1.05), r: 0.015 + 0.11*f*f,
			col: b.p.col(b.r.intn(5), b.r.between(0.5, 0.75)), alpha: b.r.between(0.2, 0.55),
			soft: b.r.between(0.04, 0.4), screen: true,
		})
	}
	for range 6 + b.r.intn(10) {
		ls = append(ls, &disc{
			cx: b.sx(0, 1), cy: b.r.between(0, 1), r: b.r.between(0.003, 0.008),
			col: gray(1), alpha: 0.9, soft: 0.5, glow: 0.25, glowCol: b.p.colS(3, 0.6, 0.8), screen: true,
		})
	}
	return append(ls, &vignette{amount: 0.4})
}

func (b builder) abstract() []layer {
	dx, dy := b.direction()
	ls := []layer{&gradient{stops: []rgb{b.p.col(0, 0.86), b.p.col(1, 0.72)}, dx: dx, dy: dy}}
	if b.r.chance(0.7) {
		sx, sy := b.direction()
		ls = append(ls, &stripes{
			dx: sx, dy: sy, freq: b.r.between(3, 11), phase: b.r.between(0, 2*math.Pi), duty: b.r.between(0.2, 0.5),
			col: b.p.col(2, 0.55), alpha: b.r.between(0.3, 0.6),
		})
	}
	if b.r.chance(0.5) {
		ls = append(ls, &rings{
			cx: b.sx(0, 1), cy: b.r.between(0, 1), freq: b.r.between(5, 14), phase: b.r.between(0, 2*math.Pi),
			decay: b.r.between(0.8, 2.5), col: b.p.col(3, 0.4), alpha: 0.7,
		})
	}
	for i := range 3 + b.r.intn(4) {
		ls = append(ls, &disc{
			cx: b.sx(0.05, 0.95), cy: b.r.between(0.05, 0.95), r: b.r.between(0.06, 0.28),
			col: b.p.col(i+1, b.r.between(0.35, 0.65)), alpha: b.r.between(0.75, 1), soft: 0.008,
		})
	}
	if b.r.chance(0.5) {
		ls = append(ls, b.ridge(b.r.between(0.7, 0.88), b.r.between(0.03, 0.1), 0.3, 1, false, b.p.col(4, 0.38), 0.4, 0.003))
	}
	return ls
}

func (b builder) waves() []layer {
	ls := []layer{b.vertical(b.p.col(0, 0.9), b.p.col(1, 0.76))}
	if b.r.chance(0.4) {
		ls = append(ls, b.sun(0.5))
	}
	n := 5 + b.r.intn(4)
	first := b.r.intn(5)
	for i := range n {
		t := float64(i) / float64(n-1)
		col := b.p.col(first+i, 0.74-0.45*t)
		ls = append(ls, b.ridge(0.22+0.68*t, b.r.between(0.03, 0.09), 0.3, 1.2, false, col, 0.3, 0.003))
	}
	return append(ls, &vignette{amount: 0.2})
}

func (b builder) aurora() []layer {
	ls := []layer{
		b.vertical(b.p.col(0, 0.05), b.p.col(0, 0.13), b.p.col(1, 0.22)),
		&stars{seed: b.r.next(), cells: b.r.between(40, 70), density: b.r.between(0.08, 0.14), maxV: 0.8, col: gray(1)},
	}
	for i := range 2 + b.r.intn(2) {
		ls = append(ls, &curtain{
			base: b.r.between(0.3, 0.55), amp: b.r.between(0.04, 0.12), freq: b.r.between(0.4, 1.2),
			phase: b.r.between(0, 2*math.Pi), width: b.r.between(0.025, 0.05), tail: b.r.between(0.12, 0.3),
			col: b.p.colS(2+i, 1.3, 0.55), top: b.p.colS(3+i, 1.3, 0.4), strength: b.r.between(0.6, 0.95), seed: b.r.next(),
		})
	}
	ls = append(ls,
		b.ridge(b.r.between(0.72, 0.8), b.r.between(0.05, 0.1), 0.6, 1.4, true, b.p.col(0, 0.1), 0.3, 0.002),
		b.ridge(b.r.between(0.85, 0.92), b.r.between(0.02, 0.05), 0.5, 1.2, false, b.p.col(0, 0.05), 0.3, 0.002),
		&vignette{amount: 0.3},
	)
	return ls
}
