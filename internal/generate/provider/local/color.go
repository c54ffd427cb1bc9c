package local

import "math"

// rgb is a colour with channels in 0–1 (sRGB values, not linear light: the
// pictures are painted, not lit, and blending in sRGB is what painters'
// tools do).
type rgb struct{ r, g, b float64 }

func gray(v float64) rgb { return rgb{v, v, v} }

func (c rgb) add(d rgb) rgb       { return rgb{c.r + d.r, c.g + d.g, c.b + d.b} }
func (c rgb) scale(k float64) rgb { return rgb{c.r * k, c.g * k, c.b * k} }

func (c rgb) clamp() rgb { return rgb{clamp01(c.r), clamp01(c.g), clamp01(c.b)} }

// lum is the Rec. 601 luma, the brightness people see.
func (c rgb) lum() float64 { return 0.299*c.r + 0.587*c.g + 0.114*c.b }

// mix returns a when t is 0 and b when t is 1.
func mix(a, b rgb, t float64) rgb {
	return rgb{a.r + (b.r-a.r)*t, a.g + (b.g-a.g)*t, a.b + (b.b-a.b)*t}
}

// screen lightens a by b the way light adds up without ever passing white.
func screen(a, b rgb) rgb {
	s := func(x, y float64) float64 { return 1 - (1-clamp01(x))*(1-clamp01(y)) }
	return rgb{s(a.r, b.r), s(a.g, b.g), s(a.b, b.b)}
}

// hsl returns the colour of hue h (degrees), saturation s and lightness l
// (both 0–1).
func hsl(h, s, l float64) rgb {
	h = math.Mod(h, 360)
	if h < 0 {
		h += 360
	}
	s, l = clamp01(s), clamp01(l)
	c := (1 - math.Abs(2*l-1)) * s
	x := c * (1 - math.Abs(math.Mod(h/60, 2)-1))
	m := l - c/2
	var r, g, b float64
	switch {
	case h < 60:
		r, g, b = c, x, 0
	case h < 120:
		r, g, b = x, c, 0
	case h < 180:
		r, g, b = 0, c, x
	case h < 240:
		r, g, b = 0, x, c
	case h < 300:
		r, g, b = x, 0, c
	default:
		r, g, b = c, 0, x
	}
	return rgb{r + m, g + m, b + m}
}

func clamp01(x float64) float64 {
	switch {
	case x < 0:
		return 0
	case x > 1:
		return 1
	}
	return x
}

func lerp(a, b, t float64) float64 { return a + (b-a)*t }

// smoothstep is 0 below e0, 1 above e1 and eases in between.
func smoothstep(e0, e1, x float64) float64 {
	if e1 == e0 {
		if x < e0 {
			return 0
		}
		return 1
	}
	t := clamp01((x - e0) / (e1 - e0))
	return t * t * (3 - 2*t)
}

// hueDistance is the angle between two hues, 0–180 degrees.
func hueDistance(a, b float64) float64 {
	d := math.Mod(math.Abs(a-b), 360)
	return math.Min(d, 360-d)
}
