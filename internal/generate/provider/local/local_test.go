package local_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"testing"
	"time"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/generate/provider"
	"github.com/fastimage/api/internal/generate/provider/local"
	"github.com/fastimage/api/internal/imaging"
	"github.com/fastimage/api/internal/imaging/imagingtest"
)

// run is what one Generate call produced.
type run struct {
	progress []provider.Progress
	outputs  []provider.Output
	err      error
}

func generate(t *testing.T, ctx context.Context, l *local.Local, req provider.Request) run {
	t.Helper()
	var r run
	r.err = l.Generate(ctx, req,
		func(p provider.Progress) { r.progress = append(r.progress, p) },
		func(o provider.Output) error {
			r.outputs = append(r.outputs, o)
			return nil
		})
	return r
}

func fast() *local.Local { return local.New(local.Config{Steps: 4, StepDelay: time.Millisecond}) }

// quick is for tests about the outputs: one step, no pause.
func quick() *local.Local { return local.New(local.Config{Steps: 1, StepDelay: -1}) }

func genRequest(prompt string, w, h, count int) provider.Request {
	return provider.Request{Kind: provider.KindGenerate, Prompt: prompt, Width: w, Height: h, Count: count, Seed: 42}
}

func decode(t *testing.T, data []byte) image.Image {
	t.Helper()
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("decode output: %v", err)
	}
	return img
}

// meanDifference is the mean absolute difference of two same-sized images'
// channels, 0–255.
func meanDifference(a, b image.Image) float64 {
	sum, n := 0.0, 0
	for y := a.Bounds().Min.Y; y < a.Bounds().Max.Y; y++ {
		for x := a.Bounds().Min.X; x < a.Bounds().Max.X; x++ {
			r1, g1, b1, _ := a.At(x, y).RGBA()
			r2, g2, b2, _ := b.At(x, y).RGBA()
			for _, d := range []int{int(r1>>8) - int(r2>>8), int(g1>>8) - int(g2>>8), int(b1>>8) - int(b2>>8)} {
				sum += float64(max(d, -d))
				n++
			}
		}
	}
	return sum / float64(n)
}

func TestGenerateIsDeterministic(t *testing.T) {
	src := imagingtest.PNG(90, 60)
	tests := []struct {
		name string
		req  provider.Request
	}{
		{"generate", genRequest("a lighthouse on a cliff at dusk", 96, 64, 2)},
		{"edit", provider.Request{Kind: provider.KindEdit, Prompt: "vintage film look", Count: 2, Seed: 7, Source: src, Strength: 0.8}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := generate(t, context.Background(), fast(), tt.req)
			second := generate(t, context.Background(), local.New(local.Config{Steps: 2, StepDelay: -1}), tt.req)
			if first.err != nil || second.err != nil {
				t.Fatalf("Generate: got %v and %v, want no errors", first.err, second.err)
			}
			if len(first.outputs) != 2 || len(second.outputs) != 2 {
				t.Fatalf("outputs: got %d and %d, want 2 each", len(first.outputs), len(second.outputs))
			}
			for i := range first.outputs {
				if !bytes.Equal(first.outputs[i].Data, second.outputs[i].Data) {
					t.Errorf("output %d: got different bytes for the same request, want identical", i)
				}
			}
			if bytes.Equal(first.outputs[0].Data, first.outputs[1].Data) {
				t.Errorf("outputs 0 and 1: got identical images, want variations")
			}
		})
	}
}

func TestGenerateDiffersByPromptAndSeed(t *testing.T) {
	base := genRequest("a red fox in the snow", 96, 96, 1)
	tests := []struct {
		name   string
		change func(*provider.Request)
	}{
		{"another prompt", func(r *provider.Request) { r.Prompt = "blue ocean waves at night" }},
		{"a prompt without known words", func(r *provider.Request) { r.Prompt = "quarterly report" }},
		{"another seed", func(r *provider.Request) { r.Seed = 43 }},
		{"a negative prompt", func(r *provider.Request) { r.NegativePrompt = "red" }},
	}
	want := generate(t, context.Background(), quick(), base)
	if want.err != nil {
		t.Fatalf("Generate: %v", want.err)
	}
	baseImg := decode(t, want.outputs[0].Data)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := base
			tt.change(&req)
			got := generate(t, context.Background(), quick(), req)
			if got.err != nil {
				t.Fatalf("Generate: %v", got.err)
			}
			// Clearly different, not a few pixels apart.
			if d := meanDifference(baseImg, decode(t, got.outputs[0].Data)); d < 12 {
				t.Errorf("mean difference: got %.1f, want at least 12", d)
			}
		})
	}
}

func TestGenerateOutputs(t *testing.T) {
	tests := []struct {
		name          string
		width, height int
		count         int
	}{
		{"one square", 64, 64, 1},
		{"two wide", 160, 90, 2},
		{"three tall", 64, 150, 3},
		{"four", 80, 80, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := generate(t, context.Background(), quick(), genRequest("a quiet mountain lake", tt.width, tt.height, tt.count))
			if got.err != nil {
				t.Fatalf("Generate: %v", got.err)
			}
			if len(got.outputs) != tt.count {
				t.Fatalf("outputs: got %d, want %d", len(got.outputs), tt.count)
			}
			for i, o := range got.outputs {
				if o.Index != i {
					t.Errorf("output %d index: got %d, want %d", i, o.Index, i)
				}
				if o.ContentType != imaging.PNG {
					t.Errorf("output %d content type: got %v, want %v", i, o.ContentType, imaging.PNG)
				}
				img, err := png.Decode(bytes.NewReader(o.Data))
				if err != nil {
					t.Fatalf("output %d: decode PNG: %v", i, err)
				}
				if b := img.Bounds(); b.Dx() != tt.width || b.Dy() != tt.height || o.Width != tt.width || o.Height != tt.height {
					t.Errorf("output %d size: got %dx%d (said %dx%d), want %dx%d", i, b.Dx(), b.Dy(), o.Width, o.Height, tt.width, tt.height)
				}
			}
		})
	}
}

func TestGenerateReportsProgress(t *testing.T) {
	tests := []struct {
		name  string
		steps int
		req   provider.Request
	}{
		{"generate", 5, genRequest("galaxy with a ringed planet", 300, 150, 2)},
		{"edit", 3, provider.Request{Kind: provider.KindEdit, Prompt: "make it look like a sunset", Count: 1, Source: imagingtest.PNG(150, 300)}},
		{"one step", 1, genRequest("pastel waves", 64, 64, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var events []string
			var progress []provider.Progress
			l := local.New(local.Config{Steps: tt.steps, StepDelay: time.Millisecond})
			err := l.Generate(context.Background(), tt.req,
				func(p provider.Progress) {
					events = append(events, "progress")
					progress = append(progress, p)
				},
				func(provider.Output) error {
					events = append(events, "output")
					return nil
				})
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			if len(progress) != tt.steps {
				t.Fatalf("progress reports: got %d, want %d", len(progress), tt.steps)
			}
			for i, p := range progress {
				if p.Step != i+1 || p.Total != tt.steps {
					t.Errorf("report %d: got step %d of %d, want %d of %d", i, p.Step, p.Total, i+1, tt.steps)
				}
				if p.Message == "" {
					t.Errorf("report %d message: got empty, want a word on what is happening", i)
				}
				if p.PreviewType != imaging.JPEG {
					t.Errorf("report %d preview type: got %v, want %v", i, p.PreviewType, imaging.JPEG)
				}
				img, err := jpeg.Decode(bytes.NewReader(p.Preview))
				if err != nil {
					t.Fatalf("report %d: decode preview: %v", i, err)
				}
				if b := img.Bounds(); max(b.Dx(), b.Dy()) > provider.PreviewMaxSide {
					t.Errorf("report %d preview size: got %dx%d, want at most %d a side", i, b.Dx(), b.Dy(), provider.PreviewMaxSide)
				}
			}
			for i, e := range events {
				if want := i >= tt.steps; (e == "output") != want {
					t.Errorf("event %d: got %v, want every report before the first output", i, e)
					break
				}
			}
		})
	}
}

func TestGenerateStopsWhenCancelled(t *testing.T) {
	tests := []struct {
		name      string
		steps     int
		stepDelay time.Duration
		side      int
		cancelAt  int // cancel from the report of this step; 0 cancels before starting
		timeout   time.Duration
		want      error
	}{
		{"before starting", 20, time.Second, 128, 0, 0, context.Canceled},
		// A second between steps: only stopping promptly gets these done
		// in time.
		{"after the first step", 20, time.Second, 128, 1, 0, context.Canceled},
		{"deadline", 20, time.Second, 128, -1, 30 * time.Millisecond, context.DeadlineExceeded},
		{"half-way", 20, 5 * time.Millisecond, 64, 10, 0, context.Canceled},
		// The last step's report comes just before the full-size renders,
		// four of the largest size.
		{"while rendering", 2, time.Millisecond, provider.MaxSide, 2, 0, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cancelled := time.Now()
			if tt.cancelAt == 0 {
				cancel()
			}
			if tt.timeout > 0 {
				var stop context.CancelFunc
				ctx, stop = context.WithTimeout(ctx, tt.timeout)
				defer stop()
				cancelled = time.Now().Add(tt.timeout)
			}
			l := local.New(local.Config{Steps: tt.steps, StepDelay: tt.stepDelay})
			emitted := 0
			err := l.Generate(ctx, genRequest("a slow sunrise", tt.side, tt.side, 4),
				func(p provider.Progress) {
					if p.Step == tt.cancelAt {
						cancelled = time.Now()
						cancel()
					}
				},
				func(provider.Output) error {
					emitted++
					return nil
				})
			if !errors.Is(err, tt.want) {
				t.Errorf("error: got %v, want %v", err, tt.want)
			}
			if late := time.Since(cancelled); late > 300*time.Millisecond {
				t.Errorf("returned %v after the cancellation, want promptly", late)
			}
			if emitted != 0 {
				t.Errorf("outputs: got %d, want 0", emitted)
			}
		})
	}
}

func TestGenerateReturnsEmitError(t *testing.T) {
	errFull := errors.New("storage full")
	calls := 0
	err := fast().Generate(context.Background(), genRequest("tea", 64, 64, 3), nil, func(provider.Output) error {
		calls++
		return errFull
	})
	if err != errFull {
		t.Errorf("error: got %v, want %v", err, errFull)
	}
	if calls != 1 {
		t.Errorf("emit calls: got %d, want 1", calls)
	}
}

func TestGenerateRejects(t *testing.T) {
	opaqueMask := imagingtest.PNG(10, 10)
	tests := []struct {
		name string
		req  provider.Request
		want apperr.Code
	}{
		{"too narrow", genRequest("x", 63, 64, 1), apperr.Validation},
		{"too wide", genRequest("x", 2049, 64, 1), apperr.Validation},
		{"too short", genRequest("x", 64, 10, 1), apperr.Validation},
		{"too tall", genRequest("x", 64, 4096, 1), apperr.Validation},
		{"no size", genRequest("x", 0, 0, 1), apperr.Validation},
		{"no images", genRequest("x", 64, 64, 0), apperr.Validation},
		{"too many images", genRequest("x", 64, 64, 5), apperr.Validation},
		{"no prompt", genRequest(" ", 64, 64, 1), apperr.Validation},
		{"unknown kind", provider.Request{Kind: "upscale", Prompt: "x", Width: 64, Height: 64, Count: 1}, apperr.Validation},
		{"edit without source", provider.Request{Kind: provider.KindEdit, Prompt: "x", Count: 1}, apperr.Validation},
		{"edit of a text file", provider.Request{Kind: provider.KindEdit, Prompt: "x", Count: 1, Source: []byte("hello, world")}, imaging.UnsupportedMediaType},
		{"edit of a bomb", provider.Request{Kind: provider.KindEdit, Prompt: "x", Count: 1, Source: imagingtest.BombPNG(90000, 90000)}, imaging.ImageTooLarge},
		{"edit of a 16-bit 40-megapixel source", provider.Request{Kind: provider.KindEdit, Prompt: "x", Count: 1, Source: imagingtest.DeepPNG(8000, 5000)}, imaging.ImageTooLarge},
		{"16-bit 40-megapixel mask", provider.Request{Kind: provider.KindEdit, Prompt: "x", Count: 1, Source: imagingtest.PNG(10, 10), Mask: imagingtest.DeepPNG(8000, 5000)}, imaging.ImageTooLarge},
		{"mask that is not an image", provider.Request{Kind: provider.KindEdit, Prompt: "x", Count: 1, Source: imagingtest.PNG(10, 10), Mask: []byte("mask")}, apperr.Validation},
		{"mask with nothing to edit", provider.Request{Kind: provider.KindEdit, Prompt: "x", Count: 1, Source: imagingtest.PNG(10, 10), Mask: opaqueMask}, apperr.Validation},
		{"JPEG mask", provider.Request{Kind: provider.KindEdit, Prompt: "x", Count: 1, Source: imagingtest.PNG(10, 10), Mask: imagingtest.JPEG(10, 10)}, apperr.Validation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := generate(t, context.Background(), fast(), tt.req)
			var ae *apperr.Error
			if !errors.As(got.err, &ae) {
				t.Fatalf("error: got %v, want an *apperr.Error", got.err)
			}
			if ae.Code != tt.want {
				t.Errorf("code: got %v, want %v", ae.Code, tt.want)
			}
			if len(got.progress) != 0 || len(got.outputs) != 0 {
				t.Errorf("work done: got %d reports and %d outputs, want none", len(got.progress), len(got.outputs))
			}
		})
	}
}

// colourful returns a w×h PNG in which every pixel is strongly coloured, so
// that any colour edit changes every pixel.
func colourful(t *testing.T, w, h int) ([]byte, *image.NRGBA) {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetNRGBA(x, y, color.NRGBA{uint8(200 - x%50), uint8(40 + y%30), uint8(60 + (x*y)%120), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), img
}

// halfMask returns a w×h PNG mask, transparent (to edit) in its left half.
func halfMask(t *testing.T, w, h int) []byte {
	t.Helper()
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := w / 2; x < w; x++ {
			m.SetNRGBA(x, y, color.NRGBA{0, 0, 0, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, m); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestEditChangesOnlyWhereTheMaskAllows(t *testing.T) {
	const w, h = 120, 80
	src, srcImg := colourful(t, w, h)
	tests := []struct {
		name string
		mask []byte
		// The output columns that must be edited and must be kept; the
		// columns between them blend across the mask's edge.
		editedBelow, keptFrom int
	}{
		{"no mask", nil, w, w},
		{"mask the same size", halfMask(t, w, h), 59, 61},
		// Half the size: each mask pixel covers two, and the edge blends
		// over the pixels either side of it.
		{"mask half the size", halfMask(t, w/2, h/2), 58, 62},
		{"mask of another shape", halfMask(t, 30, 90), 56, 64},
	}
	for _, instruction := range []string{"black and white", "blur the background", "make it neon", "zorblax the quux"} {
		for _, tt := range tests {
			t.Run(instruction+"/"+tt.name, func(t *testing.T) {
				got := generate(t, context.Background(), quick(), provider.Request{
					Kind: provider.KindEdit, Prompt: instruction, Count: 1, Seed: 1,
					Source: src, Mask: tt.mask, Strength: 1,
				})
				if got.err != nil {
					t.Fatalf("Generate: %v", got.err)
				}
				if len(got.outputs) != 1 {
					t.Fatalf("outputs: got %d, want 1", len(got.outputs))
				}
				o := got.outputs[0]
				out := decode(t, o.Data)
				if b := out.Bounds(); b.Dx() != w || b.Dy() != h || o.Width != w || o.Height != h {
					t.Fatalf("size: got %dx%d (said %dx%d), want the source's %dx%d", b.Dx(), b.Dy(), o.Width, o.Height, w, h)
				}
				changed, edited := 0, 0
				for y := range h {
					for x := range w {
						same := sameColour(out.At(x, y), srcImg.NRGBAAt(x, y))
						if x >= tt.keptFrom && !same {
							t.Fatalf("pixel (%d, %d) under the mask: got %v, want the source's %v", x, y, out.At(x, y), srcImg.NRGBAAt(x, y))
						}
						if x < tt.editedBelow {
							edited++
							if !same {
								changed++
							}
						}
					}
				}
				if changed < edited*8/10 {
					t.Errorf("changed pixels where the mask allows: got %d of %d, want most", changed, edited)
				}
			})
		}
	}
}

func sameColour(a, b color.Color) bool {
	r1, g1, b1, a1 := a.RGBA()
	r2, g2, b2, a2 := b.RGBA()
	return r1 == r2 && g1 == g2 && b1 == b2 && a1 == a2
}

func TestEditReadsEveryFormat(t *testing.T) {
	tests := []struct {
		name   string
		source []byte
		w, h   int
	}{
		{"png", imagingtest.PNG(70, 50), 70, 50},
		{"jpeg", imagingtest.JPEG(50, 70), 50, 70},
		{"webp", []byte(imagingtest.WebPLossy3x2), 3, 2},
		{"webp with alpha", []byte(imagingtest.WebPLossyAlpha3x2), 3, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The asked size is ignored: an edit keeps its source's size.
			got := generate(t, context.Background(), quick(), provider.Request{
				Kind: provider.KindEdit, Prompt: "warmer and more vivid", Count: 2, Source: tt.source, Width: 512, Height: 512,
			})
			if got.err != nil {
				t.Fatalf("Generate: %v", got.err)
			}
			if len(got.outputs) != 2 {
				t.Fatalf("outputs: got %d, want 2", len(got.outputs))
			}
			for i, o := range got.outputs {
				b := decode(t, o.Data).Bounds()
				if b.Dx() != tt.w || b.Dy() != tt.h {
					t.Errorf("output %d size: got %dx%d, want %dx%d", i, b.Dx(), b.Dy(), tt.w, tt.h)
				}
			}
		})
	}
}

func TestName(t *testing.T) {
	if got := fast().Name(); got != "local" {
		t.Errorf("Name: got %v, want local", got)
	}
}

func TestEditStrength(t *testing.T) {
	src, srcImg := colourful(t, 64, 64)
	diff := map[float64]float64{}
	for _, s := range []float64{0, 0.5, 1} {
		got := generate(t, context.Background(), quick(), provider.Request{
			Kind: provider.KindEdit, Prompt: "black and white", Count: 1, Source: src, Strength: s,
		})
		if got.err != nil {
			t.Fatalf("strength %v: Generate: %v", s, got.err)
		}
		diff[s] = meanDifference(srcImg, decode(t, got.outputs[0].Data))
	}
	// Zero is subtle, not nothing; more strength, more change.
	if !(diff[0] > 0 && diff[0] < diff[0.5] && diff[0.5] < diff[1]) {
		t.Errorf("mean difference at strength 0, 0.5, 1: got %.1f, %.1f, %.1f, want rising from above 0", diff[0], diff[0.5], diff[1])
	}
}
