package local

// palette is the five hues a picture is painted in, with the saturation and
// lightness the prompt's mood asks for.
type palette struct {
	hues  [5]float64
	sat   float64
	light float64
}

// col returns hue i of the palette at lightness l (before the mood's
// lightness).
func (p palette) col(i int, l float64) rgb { return p.colS(i, 1, l) }

// shift is col with the hue turned by dh degrees.
func (p palette) shift(i int, dh, l float64) rgb {
	return hsl(p.hues[i%len(p.hues)]+dh, p.sat, l*p.light)
}

// colS is col with the palette's saturation multiplied by s.
func (p palette) colS(i int, s, l float64) rgb {
	return hsl(p.hues[i%len(p.hues)], p.sat*s, l*p.light)
}

// newPalette picks hues for a prompt: colours the prompt names come first,
// then a colour scheme (analogous, complementary, triadic or split) around
// the first hue fills the rest. A hue close to a colour the negative prompt
// names is turned away from it. look is shared by all of a request's images;
// vary nudges the hues a little for each one.
func newPalette(prompt, negative words, look, vary *rng) palette {
	var named []float64
	for _, t := range prompt.tokens {
		if h, ok := colorHue(t); ok && len(named) < 3 {
			named = append(named, h)
		}
	}
	base := look.float() * 360
	if len(named) > 0 {
		base = named[0]
	}
	schemes := [][5]float64{
		{0, 28, -28, 56, -56},    // analogous
		{0, 180, 24, 204, -24},   // complementary
		{0, 120, 240, 30, 150},   // triadic
		{0, 150, 210, 20, -20},   // split complementary
		{0, 40, 180, 220, 80},    // tetradic-ish
		{0, 12, -12, 190, 24},    // near-monochrome with one accent
		{0, 60, 300, 180, 30},    // bright pop
		{0, -35, -70, 145, -105}, // cool sweep
	}
	scheme := schemes[look.intn(len(schemes))]
	jitter := vary.between(-10, 10)

	var p palette
	for i := range p.hues {
		p.hues[i] = base + scheme[i] + jitter
		if i < len(named) {
			p.hues[i] = named[i] + jitter/2
		}
	}
	for _, t := range negative.tokens {
		h, ok := colorHue(t)
		if !ok {
			continue
		}
		for i := range p.hues {
			if hueDistance(p.hues[i], h) < 35 {
				p.hues[i] += 150
			}
		}
	}

	m := moodOf(prompt)
	p.sat = clamp01(look.between(0.55, 0.85) * m.sat)
	p.light = m.light
	return p
}
