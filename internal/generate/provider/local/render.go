package local

import (
	"context"
	"image"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/image/draw"
)

// rowsPerChunk is how many rows a rendering goroutine takes at a time:
// enough to keep the hand-off cheap, few enough that the work spreads evenly
// and cancellation is noticed within a few milliseconds.
const rowsPerChunk = 16

// eachRow calls fn for every row in [0, height), spread over the machine's
// CPUs. Each row is handled exactly once and fn must only touch its own row.
// It stops handing out rows once ctx is done and then returns ctx.Err();
// every goroutine it starts has returned by the time it does.
func eachRow(ctx context.Context, height int, fn func(y int)) error {
	workers := min(runtime.GOMAXPROCS(0), (height+rowsPerChunk-1)/rowsPerChunk)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				y0 := int(next.Add(rowsPerChunk)) - rowsPerChunk
				if y0 >= height {
					return
				}
				for y := y0; y < min(y0+rowsPerChunk, height); y++ {
					fn(y)
				}
			}
		})
	}
	wg.Wait()
	return ctx.Err()
}

// to8 turns a channel in 0–1 into a byte. Dithering was tried and dropped:
// the soft noise of the pictures already hides banding, and dithered PNGs
// came out twice as large and three times slower to encode.
func to8(v float64) uint8 {
	return uint8(math.Max(0, math.Min(255, math.Floor(v*255+0.5))))
}

// render paints s at width × height pixels, opaque.
func (s *scene) render(ctx context.Context, width, height int) (*image.NRGBA, error) {
	img := image.NewNRGBA(image.Rect(0, 0, width, height))
	px := 1 / float64(height)
	err := eachRow(ctx, height, func(y int) {
		row := img.Pix[y*img.Stride : y*img.Stride+width*4]
		v := (float64(y) + 0.5) / float64(height)
		for x := range width {
			u := (float64(x) + 0.5) / float64(width)
			c := s.shade(point{u: u, v: v, x: u * s.aspect, px: px})
			row[x*4+0] = to8(c.r)
			row[x*4+1] = to8(c.g)
			row[x*4+2] = to8(c.b)
			row[x*4+3] = 255
		}
	})
	if err != nil {
		return nil, err
	}
	return img, nil
}

// sketch is the preview of step of steps (before the last): the scene
// rendered coarsely, at a resolution that grows with each step, and
// scaled up to width × height under a veil of noise that clears as the
// steps go by — the look of a picture emerging, as diffusion models show
// theirs. It is cheap: at most width × height pixels are painted.
func (s *scene) sketch(ctx context.Context, width, height, step, steps int) (image.Image, error) {
	done := float64(step) / float64(steps)
	lw := max(4, int(math.Round(float64(width)*done)))
	lh := max(4, int(math.Round(float64(height)*done)))
	low, err := s.render(ctx, lw, lh)
	if err != nil {
		return nil, err
	}
	img := image.NewNRGBA(image.Rect(0, 0, width, height))
	draw.BiLinear.Scale(img, img.Bounds(), low, low.Bounds(), draw.Src, nil)
	veil(img, s.seed, 0.8*math.Pow(1-done, 1.5))
	return img, nil
}

// veil blends amount of coloured noise, the same for a given seed, into img.
func veil(img *image.NRGBA, seed uint64, amount float64) {
	if amount <= 0 {
		return
	}
	b := img.Bounds()
	for y := range b.Dy() {
		row := img.Pix[y*img.Stride:]
		for x := range b.Dx() {
			h := hash2(int64(x), int64(y), seed)
			for c := range 3 {
				n := float64(uint8(h >> (8 * c)))
				row[x*4+c] = uint8(lerp(float64(row[x*4+c]), n, amount) + 0.5)
			}
		}
	}
}
