package imaging

import (
	"bytes"
	"io"
	"runtime"
	"testing"

	"github.com/fastimage/api/internal/imaging/imagingtest"
)

// A 16-bit PNG of 40 megapixels passes the pixel cap but decodes to 320 MB:
// Process, Probe and Thumbnails refuse it from its header, without
// allocating anything near its pixels.
func TestDeepImageIsRefusedBeforeDecoding(t *testing.T) {
	deep := imagingtest.DeepPNG(8000, 5000)
	steps := []struct {
		name string
		run  func() error
	}{
		{"Process", func() error { _, err := Process(bytes.NewReader(deep), io.Discard, testLimits()); return err }},
		{"Probe", func() error { _, err := Probe(bytes.NewReader(deep), Limits{}); return err }},
		{"Thumbnails", func() error { _, err := Thumbnails(bytes.NewReader(deep), 256); return err }},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := s.run()
			runtime.ReadMemStats(&after)
			checkCode(t, err, ImageTooLarge)
			if got := after.TotalAlloc - before.TotalAlloc; got > 50<<20 {
				t.Errorf("allocated %d MB refusing it, want under 50 MB", got>>20)
			}
		})
	}
	// The same image at 8 bits a channel is within the default budget.
	if _, err := Probe(bytes.NewReader(bombPNG(8000, 5000)), Limits{}); err != nil {
		t.Errorf("an 8-bit RGBA PNG of 40 megapixels: %v, want it accepted", err)
	}
	// And a budget is a setting.
	_, err := Process(bytes.NewReader(deep), io.Discard, Limits{MaxBytes: 8 << 20, MaxDecodeBytes: 400 << 20})
	checkCode(t, err, "")
}

func TestHeaderDecodeBytes(t *testing.T) {
	progressive := func(j []byte) []byte {
		// Turn the SOF0 into SOF2: the header is what the cost reads.
		j = bytes.Clone(j)
		i := bytes.Index(j, []byte{0xFF, markerSOF0})
		j[i+1] = markerSOF2
		return j
	}
	baseline := encodeJPEG(t, gradient(64, 48, false), 90) // 4:2:0
	tests := []struct {
		name string
		ct   string
		in   []byte
		want int64
	}{
		{"png 16-bit RGBA", PNG, imagingtest.DeepPNG(100, 10), 100 * 10 * 8},
		{"png 8-bit RGBA", PNG, bombPNG(100, 10), 100 * 10 * 4},
		{"jpeg baseline 4:2:0", JPEG, baseline, 64*48 + 2*32*24},
		{"jpeg progressive 4:2:0", JPEG, progressive(baseline), 5 * (64*48 + 2*32*24)},
		{"webp lossy", WebP, []byte(webpLossy3x2), 16 * 16 * 3 / 2},
		{"webp lossless", WebP, []byte(webpLossless3x2), 3 * 2 * 8},
		{"webp extended", WebP, []byte(webpLossyAlpha3x2), 16*16*3/2 + 3*2*9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := headerDecodeBytes(tt.ct, tt.in)
			if !ok || got != tt.want {
				t.Errorf("got %d (%v), want %d", got, ok, tt.want)
			}
		})
	}
}

// The estimates cover what the decoders really allocate.
func TestDecodeBytesBoundTheDecoders(t *testing.T) {
	tests := []struct {
		name string
		ct   string
		in   []byte
	}{
		{"jpeg", JPEG, encodeJPEG(t, noise(512, 512, 1), 90)},
		{"png 16-bit", PNG, imagingtest.DeepPNG(512, 512)},
		{"png 8-bit", PNG, encodePNG(t, noise(512, 512, 2))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cost, ok := headerDecodeBytes(tt.ct, tt.in)
			if !ok {
				t.Fatal("no header found")
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			if _, err := codecFor(tt.ct).decode(bytes.NewReader(tt.in)); err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			// Row buffers and tables come on top: allow 256 KB for them.
			if got := int64(after.TotalAlloc - before.TotalAlloc); got > cost+256<<10 {
				t.Errorf("decoding allocated %d bytes, the estimate is %d", got, cost)
			}
		})
	}
}

// FuzzProbe feeds headers of every type to Probe, which reads them with the
// decoders' DecodeConfig and this package's cost parsers: no input may
// panic, and an accepted one has a positive cost within the budget.
func FuzzProbe(f *testing.F) {
	for _, seed := range [][]byte{
		imagingtest.DeepPNG(30, 20), imagingtest.PNG(30, 20), imagingtest.JPEG(30, 20),
		[]byte(webpLossy3x2), []byte(webpLossless3x2), []byte(webpLossyAlpha3x2), bombPNG(9000, 9000),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := Probe(bytes.NewReader(data), Limits{MaxDecodeBytes: 64 << 20})
		if err == nil && (h.DecodeBytes <= 0 || h.DecodeBytes > 64<<20) {
			t.Errorf("accepted with DecodeBytes %d", h.DecodeBytes)
		}
	})
}
