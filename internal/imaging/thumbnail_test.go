package imaging

import (
	"bytes"
	"image"
	"testing"

	"github.com/fastimage/api/internal/apperr"
)

func TestThumbnails(t *testing.T) {
	type size struct{ w, h int }
	tests := []struct {
		name        string
		in          []byte
		sizes       []int
		want        []size
		contentType string
	}{
		{"opaque png becomes jpeg", encodePNG(t, gradient(400, 200, false)), []int{256, 1024}, []size{{256, 128}, {400, 200}}, JPEG},
		{"transparent png stays png", encodePNG(t, gradient(300, 600, true)), []int{256}, []size{{128, 256}}, PNG},
		{"jpeg, sizes in any order", encodeJPEG(t, gradient(1000, 750, false), 90), []int{1024, 100, 256, 256}, []size{{1000, 750}, {100, 75}, {256, 192}, {256, 192}}, JPEG},
		{"thin image keeps 1 pixel", encodePNG(t, gradient(2000, 3, false)), []int{256}, []size{{256, 1}}, JPEG},
		{"webp lossless opaque", []byte(webpLossless3x2), []int{256}, []size{{3, 2}}, JPEG},
		{"webp with alpha", []byte(webpLossyAlpha3x2), []int{2}, []size{{2, 1}}, PNG},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			thumbs, err := Thumbnails(bytes.NewReader(tt.in), tt.sizes...)
			if err != nil {
				t.Fatalf("Thumbnails: got %v, want no error", err)
			}
			if len(thumbs) != len(tt.want) {
				t.Fatalf("thumbnails: got %d, want %d", len(thumbs), len(tt.want))
			}
			for i, th := range thumbs {
				if th.Width != tt.want[i].w || th.Height != tt.want[i].h {
					t.Errorf("size %d: got %d×%d, want %d×%d", tt.sizes[i], th.Width, th.Height, tt.want[i].w, tt.want[i].h)
				}
				if th.ContentType != tt.contentType {
					t.Errorf("size %d content type: got %v, want %v", tt.sizes[i], th.ContentType, tt.contentType)
				}
				if got, _ := Sniff(th.Data); got != tt.contentType {
					t.Errorf("size %d data sniffs as: got %v, want %v", tt.sizes[i], got, tt.contentType)
				}
				img := mustDecode(t, th.ContentType, th.Data)
				if b := img.Bounds(); b.Dx() != th.Width || b.Dy() != th.Height {
					t.Errorf("size %d decoded: got %v, want %d×%d", tt.sizes[i], b.Size(), th.Width, th.Height)
				}
				if wantOpaque := tt.contentType == JPEG; isOpaque(img) != wantOpaque {
					t.Errorf("size %d opaque: got %v, want %v", tt.sizes[i], isOpaque(img), wantOpaque)
				}
			}
		})
	}
}

func TestThumbnailKeepsTransparency(t *testing.T) {
	th, err := Thumbnail(bytes.NewReader(encodePNG(t, gradient(300, 600, true))), 256)
	if err != nil {
		t.Fatalf("Thumbnail: got %v, want no error", err)
	}
	img := mustDecode(t, PNG, th.Data)
	if _, _, _, a := img.At(0, 100).RGBA(); a > 0x1000 {
		t.Errorf("alpha at the faded left edge: got %#x, want nearly 0", a)
	}
	if _, _, _, a := img.At(th.Width-1, 100).RGBA(); a != 0xFFFF {
		t.Errorf("alpha at the opaque right edge: got %#x, want 0xffff", a)
	}
}

func TestThumbnailsRejects(t *testing.T) {
	pngFile := encodePNG(t, gradient(40, 30, false))
	tests := []struct {
		name  string
		in    []byte
		sizes []int
		want  apperr.Code
	}{
		{"text", []byte("not an image at all"), []int{256}, UnsupportedMediaType},
		{"truncated png", pngFile[:len(pngFile)-20], []int{256}, InvalidImage},
		{"truncated jpeg", encodeJPEG(t, gradient(40, 30, false), 90)[:300], []int{256}, InvalidImage},
		{"png bomb, not decoded", bombPNG(50000, 50000), []int{256}, ImageTooLarge},
		{"animated webp", webpFile(vp8xChunk(1<<1, 3, 2), riffChunk("ANIM", make([]byte, 6))), []int{256}, InvalidImage},
		{"no sizes", pngFile, nil, apperr.Internal},
		{"zero size", pngFile, []int{256, 0}, apperr.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Thumbnails(bytes.NewReader(tt.in), tt.sizes...)
			checkCode(t, err, tt.want)
		})
	}
}

func TestFit(t *testing.T) {
	tests := []struct {
		w, h, max    int
		wantW, wantH int
	}{
		{4000, 3000, 1024, 1024, 768},
		{3000, 4000, 256, 192, 256},
		{100, 50, 256, 100, 50},
		{256, 256, 256, 256, 256},
		{10000, 1, 256, 256, 1},
		{1001, 1000, 1000, 1000, 999},
	}
	for _, tt := range tests {
		t.Run(image.Rect(0, 0, tt.w, tt.h).Size().String(), func(t *testing.T) {
			w, h := fit(tt.w, tt.h, tt.max)
			if w != tt.wantW || h != tt.wantH {
				t.Errorf("fit(%d, %d, %d): got %d×%d, want %d×%d", tt.w, tt.h, tt.max, w, h, tt.wantW, tt.wantH)
			}
		})
	}
}
