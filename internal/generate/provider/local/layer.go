package local

import "math"

// point is where a pixel's centre falls in a scene. u and v run 0–1 across
// and down the picture; x is u stretched by the aspect ratio, so that
// distances measured in (x, v) are the same both ways and circles stay
// round; px is the height of one pixel in those units, the least softness
// an edge needs not to look jagged.
type point struct {
	u, v, x float64
	px      float64
}

// layer is one stroke of a picture: it paints over the colour below it.
type layer interface {
	paint(below rgb, p point) rgb
}

// gradient fills the whole picture, linearly along a direction or radially
// from a centre, through evenly spaced colour stops.
type gradient struct {
	stops  []rgb
	dx, dy float64 // direction, a unit vector (linear)
	radial bool
	cx, cy float64 // centre in (x, v) (radial)
	reach  float64 // distance of the last stop (radial)
}

func (g *gradient) paint(_ rgb, p point) rgb {
	var t float64
	if g.radial {
		t = math.Hypot(p.x-g.cx, p.v-g.cy) / g.reach
	} else {
		// Scaled so that the two far corners sit at exactly 0 and 1.
		t = 0.5 + ((p.u-0.5)*g.dx+(p.v-0.5)*g.dy)/(math.Abs(g.dx)+math.Abs(g.dy))
	}
	t = clamp01(t) * float64(len(g.stops)-1)
	i := min(int(t), len(g.stops)-2)
	f := t - float64(i)
	return mix(g.stops[i], g.stops[i+1], f*f*(3-2*f))
}

// ridge is a silhouette — a mountain range, a hill, a wave — whose crest is a
// sum of sines along x. Below the crest it shades from top to bottom over
// depth.
type ridge struct {
	base, amp   float64
	freq, phase [3]float64
	weight      [3]float64
	sharp       bool // peaked like mountains rather than rolling like hills
	top, bottom rgb
	depth       float64
	soft        float64
}

func (r *ridge) crest(x float64) float64 {
	s := 0.0
	for i := range r.freq {
		t := math.Sin(2*math.Pi*r.freq[i]*x + r.phase[i])
		if r.sharp {
			t = 1 - 2*math.Abs(t)
		}
		s += r.weight[i] * t
	}
	return r.base - r.amp*s
}

func (r *ridge) paint(below rgb, p point) rgb {
	h := r.crest(p.x)
	edge := max(r.soft, p.px)
	a := smoothstep(h-edge, h+edge, p.v)
	if a == 0 {
		return below
	}
	return mix(below, mix(r.top, r.bottom, clamp01((p.v-h)/r.depth)), a)
}

// disc is a round shape: a sun with its glow, a planet lit from one side, a
// bokeh highlight.
type disc struct {
	cx, cy, r float64
	col       rgb
	alpha     float64
	soft      float64 // edge softness, a fraction of r
	glow      float64 // strength of the halo around it
	glowCol   rgb
	lit       bool    // shade as a sphere lit from (lx, ly)
	lx, ly    float64 // light direction, toward the viewer's upper side
	screen    bool    // add light instead of covering
}

func (d *disc) paint(below rgb, p point) rgb {
	edge := max(d.soft*d.r, p.px)
	// Past reach neither the disc nor its glow (faded to e^-9) shows, and a
	// box test is cheaper than the distance.
	reach := d.r + edge
	if d.glow > 0 {
		reach = d.r * 12
	}
	dx, dy := p.x-d.cx, p.v-d.cy
	if math.Abs(dx) > reach || math.Abs(dy) > reach {
		return below
	}
	dist := math.Hypot(dx, dy)
	c := below
	if d.glow > 0 {
		g := d.glow * math.Exp(-max(0, dist-d.r)/(d.r*1.2))
		c = screen(c, d.glowCol.scale(g))
	}
	if dist > d.r+edge {
		return c
	}
	a := d.alpha * (1 - smoothstep(d.r-edge, d.r+edge, dist))
	col := d.col
	if d.lit {
		nx, ny := (p.x-d.cx)/d.r, (p.v-d.cy)/d.r
		nz := math.Sqrt(max(0, 1-nx*nx-ny*ny))
		lz := math.Sqrt(max(0, 1-d.lx*d.lx-d.ly*d.ly))
		light := max(0, nx*d.lx+ny*d.ly+nz*lz)
		col = col.scale(0.12 + 0.88*light)
	}
	if d.screen {
		return screen(c, col.scale(a))
	}
	return mix(c, col, a)
}

// stripes are soft parallel bands.
type stripes struct {
	dx, dy      float64 // across the bands, a unit vector
	freq, phase float64
	duty        float64 // how much of each period is band, 0–1
	col         rgb
	alpha       float64
}

func (s *stripes) paint(below rgb, p point) rgb {
	t := 0.5 + 0.5*math.Sin(2*math.Pi*(p.x*s.dx+p.v*s.dy)*s.freq+s.phase)
	edge := max(0.04, p.px*s.freq*4)
	a := s.alpha * smoothstep(1-s.duty-edge, 1-s.duty+edge, t)
	return mix(below, s.col, a)
}

// rings are ripples spreading from a centre and fading with distance.
type rings struct {
	cx, cy      float64
	freq, phase float64
	decay       float64
	col         rgb
	alpha       float64
}

func (r *rings) paint(below rgb, p point) rgb {
	d := math.Hypot(p.x-r.cx, p.v-r.cy)
	s := 0.5 + 0.5*math.Sin(2*math.Pi*d*r.freq+r.phase)
	return mix(below, r.col, r.alpha*s*s*math.Exp(-d*r.decay))
}

// clouds are fractal noise thresholded into soft shapes, covering rows
// above y1 (fading out from y0); additive clouds glow like a nebula.
type clouds struct {
	seed     uint64
	scale    float64
	stretch  float64 // wider than tall when > 1
	cover    float64 // noise level where cloud starts, 0–1
	col      rgb     // dense parts
	thin     rgb     // thin edges
	alpha    float64
	y0, y1   float64
	additive bool
}

func (c *clouds) paint(below rgb, p point) rgb {
	if p.v >= c.y1 {
		return below
	}
	n := fbm(p.x*c.scale/c.stretch, p.v*c.scale, c.seed, 5)
	a := smoothstep(c.cover, c.cover+0.28, n) * c.alpha * (1 - smoothstep(c.y0, c.y1, p.v))
	if a == 0 {
		return below
	}
	col := mix(c.thin, c.col, smoothstep(c.cover, c.cover+0.4, n))
	if c.additive {
		return screen(below, col.scale(a))
	}
	return mix(below, col, a)
}

// stars are points of light on a grid of cells, one star in some of them,
// thinning out toward maxV.
type stars struct {
	seed    uint64
	cells   float64 // cells per unit of height
	density float64 // share of cells with a star
	maxV    float64
	col     rgb
}

func (s *stars) paint(below rgb, p point) rgb {
	if p.v >= s.maxV {
		return below
	}
	gx, gy := p.x*s.cells, p.v*s.cells
	cx, cy := math.Floor(gx), math.Floor(gy)
	h := hash2(int64(cx), int64(cy), s.seed)
	if unit(h) >= s.density {
		return below
	}
	h2 := mix64(h)
	ox := 0.25 + 0.5*unit(h2)
	oy := 0.25 + 0.5*unit(mix64(h2))
	bright := 0.35 + 0.65*unit(mix64(h2^0x5bd1e995))
	sigma := max(0.035+0.06*bright, 0.6*p.px*s.cells)
	dx, dy := gx-cx-ox, gy-cy-oy
	b := bright * math.Exp(-(dx*dx+dy*dy)/(2*sigma*sigma)) * (1 - smoothstep(s.maxV*0.6, s.maxV, p.v))
	return screen(below, s.col.scale(b))
}

// glitter is the path of sparkles a low sun draws on water below the
// horizon.
type glitter struct {
	x, horizon float64
	width      float64
	col        rgb
	seed       uint64
}

func (g *glitter) paint(below rgb, p point) rgb {
	if p.v <= g.horizon {
		return below
	}
	depth := p.v - g.horizon
	w := g.width * (0.25 + depth*3)
	a := math.Exp(-sq((p.x - g.x) / w))
	if a < 0.01 {
		return below
	}
	streak := valueNoise(p.x*30/(0.2+depth), p.v*260/(0.15+depth), g.seed)
	a *= smoothstep(0.45, 0.85, streak) * smoothstep(0, 0.02, depth)
	return screen(below, g.col.scale(a))
}

// band is a soft horizontal glow, the bright air over a horizon.
type band struct {
	y, width float64
	col      rgb
	strength float64
}

func (b *band) paint(below rgb, p point) rgb {
	return screen(below, b.col.scale(b.strength*math.Exp(-math.Abs(p.v-b.y)/b.width)))
}

// curtain is an aurora: a wavy band of light with rays streaming up from it.
type curtain struct {
	base, amp, freq, phase float64
	width, tail            float64
	col, top               rgb
	strength               float64
	seed                   uint64
}

func (c *curtain) paint(below rgb, p point) rgb {
	yc := c.base + c.amp*math.Sin(2*math.Pi*c.freq*p.x+c.phase) +
		0.4*c.amp*math.Sin(2*math.Pi*c.freq*2.7*p.x+1.3*c.phase)
	dy := p.v - yc
	var a float64
	if dy > 0 {
		a = math.Exp(-sq(dy / c.width))
	} else {
		a = math.Exp(dy / c.tail)
	}
	if a < 0.004 {
		return below
	}
	rays := 0.35 + 0.65*fbm(p.x*18, 0.37, c.seed, 3)
	col := mix(c.col, c.top, clamp01(-dy/(2*c.tail)))
	return screen(below, col.scale(a*rays*c.strength))
}

// vignette darkens the corners, drawing the eye to the middle.
type vignette struct{ amount float64 }

func (v *vignette) paint(below rgb, p point) rgb {
	d := math.Hypot(p.u-0.5, p.v-0.5) / math.Sqrt2 * 2
	return below.scale(1 - v.amount*smoothstep(0.45, 1.1, d))
}

func sq(x float64) float64 { return x * x }
