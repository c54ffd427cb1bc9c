package local

import (
	"image"
	"math"
)

// mask says how much of each part of a picture an edit may change. It is
// kept at its own resolution and sampled at the picture's, so that a mask
// drawn at another size (a browser canvas, say) still lines up.
type mask struct {
	alpha []uint8 // row-major, w × h
	w, h  int
}

// newMask keeps the alpha channel of img.
func newMask(img image.Image) *mask {
	b := img.Bounds()
	m := &mask{alpha: make([]uint8, b.Dx()*b.Dy()), w: b.Dx(), h: b.Dy()}
	switch src := img.(type) {
	case *image.NRGBA:
		for y := range m.h {
			row := src.Pix[y*src.Stride:]
			for x := range m.w {
				m.alpha[y*m.w+x] = row[x*4+3]
			}
		}
	case *image.RGBA:
		for y := range m.h {
			row := src.Pix[y*src.Stride:]
			for x := range m.w {
				m.alpha[y*m.w+x] = row[x*4+3]
			}
		}
	default:
		for y := range m.h {
			for x := range m.w {
				_, _, _, a := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
				m.alpha[y*m.w+x] = uint8(a >> 8)
			}
		}
	}
	return m
}

// keep returns how much of the picture to keep at (u, v), in 0–1: 1 where
// the mask is opaque, 0 where it is transparent, blended across the mask's
// pixels so that its edges do not show as steps. It is exactly 1 wherever
// the nearby mask pixels are all opaque, so such pixels are left untouched.
func (m *mask) keep(u, v float64) float64 {
	fx := math.Max(0, math.Min(float64(m.w-1), u*float64(m.w)-0.5))
	fy := math.Max(0, math.Min(float64(m.h-1), v*float64(m.h)-0.5))
	x0, y0 := int(fx), int(fy)
	x1, y1 := min(x0+1, m.w-1), min(y0+1, m.h-1)
	a00, a10 := m.alpha[y0*m.w+x0], m.alpha[y0*m.w+x1]
	a01, a11 := m.alpha[y1*m.w+x0], m.alpha[y1*m.w+x1]
	if a00&a10&a01&a11 == 255 {
		return 1
	}
	tx, ty := fx-float64(x0), fy-float64(y0)
	top := lerp(float64(a00), float64(a10), tx)
	bottom := lerp(float64(a01), float64(a11), tx)
	return lerp(top, bottom, ty) / 255
}
