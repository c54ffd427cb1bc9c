package local

import (
	"context"
	"image"
	"math"
	"slices"
	"strconv"

	"golang.org/x/image/draw"

	"github.com/fastimage/api/internal/generate/provider"
)

// spatial is the one effect of an edit that looks at a pixel's
// neighbourhood rather than the pixel alone.
type spatial int

const (
	noSpatial spatial = iota
	blur
	glow
	pixelate
)

// helperSide is the long side of the small copy a spatial effect samples:
// the blur radius and the pixel blocks are fractions of the picture, so
// they look the same on the preview and on the full-size output.
func (s spatial) helperSide() int {
	switch s {
	case pixelate:
		return 48
	case glow:
		return 56
	}
	return 72
}

// colorOp changes the colour of one pixel at (u, v).
type colorOp func(c rgb, u, v float64) rgb

// edit is an instruction turned into effects: at most one spatial effect,
// then colour changes in order.
type edit struct {
	spatial spatial
	ops     []colorOp
}

// planEdit reads an edit instruction. Words it knows ("blur", "vintage",
// "black and white", "warmer", "neon", colours…) pick their effects; an
// instruction with none of them gets effects picked by its hash. The
// parameters (how warm, which hue, how many levels) come from the hash of
// the instruction, seed and index, so every image of a request is a
// different take on the same instruction, and the same request gives the
// same images.
func planEdit(instruction, negative string, seed int64, index int) edit {
	w := readWords(instruction)
	r := newRNG("edit", w.text, readWords(negative).text, strconv.FormatInt(seed, 10), strconv.Itoa(index))
	var e edit
	add := func(ops ...colorOp) { e.ops = append(e.ops, ops...) }
	setSpatial := func(s spatial) {
		if e.spatial == noSpatial {
			e.spatial = s
		}
	}

	if w.has("pixel", "pixelate", "pixelated", "8-bit", "8bit", "mosaic", "lego", "retro game", "minecraft") {
		setSpatial(pixelate)
		add(posterize(5 + r.intn(3)))
	}
	if w.has("blur", "blurry", "blurred", "soft focus", "out of focus", "defocus", "bokeh", "smooth") {
		setSpatial(blur)
	}
	if w.has("dreamy", "dream", "glow", "glowing", "ethereal", "soft", "magical", "magic", "fairy") {
		setSpatial(glow)
		add(saturate(r.between(1.05, 1.25)))
	}
	if w.has("black and white", "grayscale", "greyscale", "monochrome", "b&w", "noir", "gray", "grey") {
		add(saturate(0), contrast(r.between(1.05, 1.25)))
	}
	if w.has("sepia", "vintage", "retro", "old photo", "antique", "old", "aged", "nostalgic", "film") {
		add(sepia(r.between(0.6, 0.9)), contrast(0.9), darkenCorners(r.between(0.3, 0.5)))
	}
	if w.has("invert", "inverted", "negative", "inverse") {
		add(invert)
	}
	if w.has("posterize", "poster", "pop art", "comic", "cartoon", "flat", "illustration", "warhol") {
		add(saturate(r.between(1.4, 1.8)), posterize(3+r.intn(3)))
	}
	if w.has("warm", "warmer", "cozy", "cosy", "summer", "autumn", "fall", "golden", "golden hour", "sunset", "sunrise") {
		add(temperature(r.between(0.07, 0.13)))
		if w.has("sunset", "sunrise", "golden", "golden hour") {
			add(overlay(hsl(r.between(20, 40), 0.9, 0.6), hsl(r.between(320, 350), 0.6, 0.35), 0.45))
		}
	}
	if w.has("cool", "cooler", "cold", "winter", "ice", "icy", "frozen", "snow", "snowy", "blue hour", "arctic") {
		add(temperature(-r.between(0.07, 0.13)))
		if w.has("winter", "snow", "snowy", "frozen", "ice", "icy", "arctic") {
			add(saturate(0.7), brightness(1.08))
		}
	}
	if w.has("night", "midnight", "evening", "moody", "moonlight") {
		add(brightness(r.between(0.5, 0.65)), temperature(-0.08), contrast(1.1), darkenCorners(0.4))
	} else if w.has("dark", "darker", "darken", "dim", "dimmer") {
		add(brightness(r.between(0.65, 0.8)))
	}
	if w.has("bright", "brighter", "brighten", "lighter", "lighten", "sunny", "daytime", "day", "light") {
		add(brightness(r.between(1.15, 1.3)), gammaOp(0.9))
	}
	if w.has("vivid", "vibrant", "saturated", "colorful", "colourful", "pop", "punchy", "hdr", "rich") {
		add(saturate(r.between(1.5, 1.9)), contrast(1.1))
	}
	if w.has("muted", "faded", "desaturate", "desaturated", "washed", "pale", "pastel", "matte") {
		add(saturate(r.between(0.35, 0.55)), contrast(0.85), brightness(1.08))
	}
	if w.has("contrast", "dramatic", "drama", "sharp", "sharpen", "bold", "cinematic", "epic") {
		add(contrast(r.between(1.25, 1.45)), saturate(1.1), darkenCorners(0.35))
	}
	if w.has("neon", "cyberpunk", "synthwave", "vaporwave", "futuristic", "sci-fi", "scifi") {
		h := r.between(280, 320)
		add(duotone(hsl(h, 0.8, 0.12), hsl(h-r.between(100, 130), 0.9, 0.65)), saturate(1.2))
	}
	if w.has("fire", "flame", "flames", "burning", "hell", "lava", "inferno") {
		add(duotone(hsl(r.between(350, 365), 0.9, 0.15), hsl(r.between(40, 55), 1, 0.62)))
	}
	if w.has("underwater", "aquatic", "ocean", "sea", "lagoon") {
		add(colorize(r.between(180, 200), 0.6, 0.5))
		setSpatial(glow)
	}
	if w.has("spring", "lush", "jungle", "forest", "garden") {
		add(saturate(1.3), colorize(r.between(90, 130), 0.5, 0.2))
	}
	if w.has("hue", "shift", "psychedelic", "trippy", "surreal", "alien", "weird", "acid", "rainbow") {
		add(hueRotate(r.between(60, 300)))
	}
	if w.has("vignette") {
		add(darkenCorners(r.between(0.4, 0.6)))
	}
	if w.has("posterise", "posterized", "posterised", "reduce colors", "reduce colours") {
		add(posterize(3 + r.intn(3)))
	}
	for _, t := range w.tokens {
		if h, ok := colorHue(t); ok {
			add(colorize(h+r.between(-8, 8), r.between(0.55, 0.8), r.between(0.45, 0.65)))
			break
		}
	}

	if e.spatial == noSpatial && len(e.ops) == 0 {
		// An instruction this package does not understand still gets a
		// real, visible change: its hash picks one.
		switch r.intn(6) {
		case 0:
			add(hueRotate(r.between(60, 300)), saturate(1.2))
		case 1:
			add(colorize(r.between(0, 360), 0.6, 0.6))
		case 2:
			h := r.between(0, 360)
			add(duotone(hsl(h, 0.7, 0.12), hsl(h+r.between(90, 270), 0.8, 0.72)))
		case 3:
			add(saturate(1.6), posterize(4+r.intn(3)))
		case 4:
			e.spatial = glow
			add(temperature(r.between(-0.1, 0.1)))
		default:
			add(sepia(0.8), darkenCorners(0.4))
		}
	}
	if index > 0 {
		// Later images of the same edit vary the tint, so the user gets a
		// choice rather than copies.
		add(hueRotate(r.sign()*r.between(12, 35)), contrast(r.between(0.95, 1.1)))
	}
	return e
}

// apply changes img in place: each pixel moves from its colour toward the
// edited colour by strength, times how much the mask (if any) lets it
// change. Pixels the mask keeps entirely are not written at all.
func (e edit) apply(ctx context.Context, img *image.NRGBA, m *mask, strength float64) error {
	var helper *image.RGBA
	if e.spatial != noSpatial {
		helper = shrink(img, e.spatial.helperSide())
		if e.spatial != pixelate {
			soften(helper)
			soften(helper)
		}
	}
	width, height := img.Rect.Dx(), img.Rect.Dy()
	return eachRow(ctx, height, func(y int) {
		row := img.Pix[y*img.Stride : y*img.Stride+width*4]
		v := (float64(y) + 0.5) / float64(height)
		for x := range width {
			u := (float64(x) + 0.5) / float64(width)
			amount := strength
			if m != nil {
				amount *= 1 - m.keep(u, v)
			}
			if amount <= 0 {
				continue
			}
			p := row[x*4 : x*4+4 : x*4+4]
			c0 := rgb{float64(p[0]) / 255, float64(p[1]) / 255, float64(p[2]) / 255}
			c := c0
			switch e.spatial {
			case blur:
				c = sampleSmooth(helper, u, v)
			case glow:
				c = screen(c0, sampleSmooth(helper, u, v).scale(0.6))
			case pixelate:
				c = sampleNearest(helper, u, v)
			}
			for _, op := range e.ops {
				c = op(c, u, v).clamp()
			}
			c = mix(c0, c, amount)
			p[0], p[1], p[2] = to8(c.r), to8(c.g), to8(c.b)
		}
	})
}

// toNRGBA returns img as an *image.NRGBA with its origin at (0, 0), sharing
// nothing with img.
func toNRGBA(img image.Image) *image.NRGBA {
	b := img.Bounds()
	r := image.Rect(0, 0, b.Dx(), b.Dy())
	if n, ok := img.(*image.NRGBA); ok && b.Min == (image.Point{}) {
		return cloneNRGBA(n)
	}
	if o, ok := img.(interface{ Opaque() bool }); ok && o.Opaque() {
		// image/draw converts the common decoders' types (YCbCr above all)
		// to RGBA quickly, and for opaque pixels RGBA and NRGBA hold the
		// same bytes.
		rgba := image.NewRGBA(r)
		draw.Draw(rgba, r, img, b.Min, draw.Src)
		return &image.NRGBA{Pix: rgba.Pix, Stride: rgba.Stride, Rect: r}
	}
	n := image.NewNRGBA(r)
	draw.Draw(n, r, img, b.Min, draw.Src)
	return n
}

func cloneNRGBA(n *image.NRGBA) *image.NRGBA {
	return &image.NRGBA{Pix: slices.Clone(n.Pix), Stride: n.Stride, Rect: n.Rect}
}

// shrink returns a copy of img whose long side is at most side pixels.
func shrink(img image.Image, side int) *image.RGBA {
	b := img.Bounds()
	w, h := provider.FitSize(b.Dx(), b.Dy(), side)
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.BiLinear.Scale(dst, dst.Rect, img, b, draw.Src, nil)
	return dst
}

// soften box-blurs img by one pixel in place.
func soften(img *image.RGBA) {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	src := slices.Clone(img.Pix)
	for y := range h {
		for x := range w {
			for c := range 4 {
				sum, n := 0, 0
				for dy := -1; dy <= 1; dy++ {
					for dx := -1; dx <= 1; dx++ {
						xx, yy := x+dx, y+dy
						if xx < 0 || yy < 0 || xx >= w || yy >= h {
							continue
						}
						sum += int(src[yy*img.Stride+xx*4+c])
						n++
					}
				}
				img.Pix[y*img.Stride+x*4+c] = uint8((sum + n/2) / n)
			}
		}
	}
}

// unpremultiplied returns pixel (x, y) of img as a colour.
func unpremultiplied(img *image.RGBA, x, y int) (rgb, float64) {
	p := img.Pix[y*img.Stride+x*4:]
	a := float64(p[3]) / 255
	if a == 0 {
		return rgb{}, 0
	}
	return rgb{float64(p[0]) / 255 / a, float64(p[1]) / 255 / a, float64(p[2]) / 255 / a}, a
}

func sampleNearest(img *image.RGBA, u, v float64) rgb {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	x := min(w-1, int(u*float64(w)))
	y := min(h-1, int(v*float64(h)))
	c, _ := unpremultiplied(img, x, y)
	return c
}

// sampleSmooth interpolates img at (u, v) with eased weights, which hides
// the creases plain bilinear interpolation leaves when a small image is
// stretched a long way.
func sampleSmooth(img *image.RGBA, u, v float64) rgb {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	fx := math.Max(0, math.Min(float64(w-1), u*float64(w)-0.5))
	fy := math.Max(0, math.Min(float64(h-1), v*float64(h)-0.5))
	x0, y0 := int(fx), int(fy)
	x1, y1 := min(x0+1, w-1), min(y0+1, h-1)
	tx, ty := smoothstep(0, 1, fx-float64(x0)), smoothstep(0, 1, fy-float64(y0))
	c00, _ := unpremultiplied(img, x0, y0)
	c10, _ := unpremultiplied(img, x1, y0)
	c01, _ := unpremultiplied(img, x0, y1)
	c11, _ := unpremultiplied(img, x1, y1)
	return mix(mix(c00, c10, tx), mix(c01, c11, tx), ty)
}

// mat3 is a colour matrix, row by row.
type mat3 [9]float64

func (m mat3) apply(c rgb) rgb {
	return rgb{
		m[0]*c.r + m[1]*c.g + m[2]*c.b,
		m[3]*c.r + m[4]*c.g + m[5]*c.b,
		m[6]*c.r + m[7]*c.g + m[8]*c.b,
	}
}

// hueRotate turns every hue by deg degrees, keeping luminance (the matrix
// of CSS's hue-rotate filter).
func hueRotate(deg float64) colorOp {
	cs, sn := math.Cos(deg*math.Pi/180), math.Sin(deg*math.Pi/180)
	m := mat3{
		0.213 + cs*0.787 - sn*0.213, 0.715 - cs*0.715 - sn*0.715, 0.072 - cs*0.072 + sn*0.928,
		0.213 - cs*0.213 + sn*0.143, 0.715 + cs*0.285 + sn*0.140, 0.072 - cs*0.072 - sn*0.283,
		0.213 - cs*0.213 - sn*0.787, 0.715 - cs*0.715 + sn*0.715, 0.072 + cs*0.928 + sn*0.072,
	}
	return func(c rgb, _, _ float64) rgb { return m.apply(c) }
}

// saturate scales saturation by s: 0 is grey, 1 unchanged (CSS's saturate).
func saturate(s float64) colorOp {
	m := mat3{
		0.213 + 0.787*s, 0.715 - 0.715*s, 0.072 - 0.072*s,
		0.213 - 0.213*s, 0.715 + 0.285*s, 0.072 - 0.072*s,
		0.213 - 0.213*s, 0.715 - 0.715*s, 0.072 + 0.928*s,
	}
	return func(c rgb, _, _ float64) rgb { return m.apply(c) }
}

// sepia tones the picture brown like an old print, by amount.
func sepia(amount float64) colorOp {
	m := mat3{0.393, 0.769, 0.189, 0.349, 0.686, 0.168, 0.272, 0.534, 0.131}
	return func(c rgb, _, _ float64) rgb { return mix(c, m.apply(c), amount) }
}

// colorize recolours toward hue at saturation sat, keeping each pixel's
// brightness, by amount.
func colorize(hue, sat, amount float64) colorOp {
	return func(c rgb, _, _ float64) rgb { return mix(c, hsl(hue, sat, c.lum()), amount) }
}

// duotone maps brightness onto a ramp from dark to light.
func duotone(dark, light rgb) colorOp {
	return func(c rgb, _, _ float64) rgb { return mix(dark, light, smoothstep(0.02, 0.98, c.lum())) }
}

// temperature warms (k > 0) or cools (k < 0) the picture.
func temperature(k float64) colorOp {
	return func(c rgb, _, _ float64) rgb { return rgb{c.r + k, c.g + k*0.25, c.b - k} }
}

func brightness(f float64) colorOp {
	return func(c rgb, _, _ float64) rgb { return c.scale(f) }
}

// contrast spreads (f > 1) or gathers (f < 1) tones around mid-grey.
func contrast(f float64) colorOp {
	return func(c rgb, _, _ float64) rgb {
		return rgb{(c.r-0.5)*f + 0.5, (c.g-0.5)*f + 0.5, (c.b-0.5)*f + 0.5}
	}
}

// gammaOp lifts the shadows (g < 1) or deepens them (g > 1).
func gammaOp(g float64) colorOp {
	return func(c rgb, _, _ float64) rgb {
		return rgb{math.Pow(c.r, g), math.Pow(c.g, g), math.Pow(c.b, g)}
	}
}

// posterize keeps n levels per channel.
func posterize(n int) colorOp {
	k := float64(n - 1)
	return func(c rgb, _, _ float64) rgb {
		return rgb{math.Round(c.r*k) / k, math.Round(c.g*k) / k, math.Round(c.b*k) / k}
	}
}

func invert(c rgb, _, _ float64) rgb { return rgb{1 - c.r, 1 - c.g, 1 - c.b} }

// darkenCorners is a vignette: it darkens toward the corners.
func darkenCorners(amount float64) colorOp {
	return func(c rgb, u, v float64) rgb {
		d := math.Hypot(u-0.5, v-0.5) * math.Sqrt2
		return c.scale(1 - amount*smoothstep(0.45, 1.1, d))
	}
}

// overlay washes the picture with light that shades from top to bottom, as
// the sky does at sunset.
func overlay(top, bottom rgb, amount float64) colorOp {
	return func(c rgb, _, v float64) rgb { return screen(c, mix(top, bottom, v).scale(amount)) }
}
