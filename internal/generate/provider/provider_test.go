package provider_test

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"strings"
	"testing"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/generate/provider"
	"github.com/fastimage/api/internal/imaging"
	"github.com/fastimage/api/internal/imaging/imagingtest"
)

func TestValidate(t *testing.T) {
	gen := provider.Request{Kind: provider.KindGenerate, Prompt: "a lighthouse", Width: 512, Height: 512, Count: 1}
	edit := provider.Request{Kind: provider.KindEdit, Prompt: "make it warmer", Count: 1, Source: []byte("image bytes"), Strength: 0.5}
	with := func(r provider.Request, change func(*provider.Request)) provider.Request {
		change(&r)
		return r
	}
	tests := []struct {
		name string
		req  provider.Request
		want apperr.Code
	}{
		{"generation", gen, ""},
		{"edit", edit, ""},
		{"edit with a size", with(edit, func(r *provider.Request) { r.Width, r.Height = 1024, 1024 }), ""},
		{"smallest and largest sides", with(gen, func(r *provider.Request) { r.Width, r.Height = provider.MinSide, provider.MaxSide }), ""},
		{"four images", with(gen, func(r *provider.Request) { r.Count = provider.MaxCount }), ""},
		{"unknown kind", with(gen, func(r *provider.Request) { r.Kind = "upscale" }), apperr.Validation},
		{"blank prompt", with(gen, func(r *provider.Request) { r.Prompt = "  \n" }), apperr.Validation},
		{"long prompt", with(gen, func(r *provider.Request) { r.Prompt = strings.Repeat("é", provider.MaxPromptLength+1) }), apperr.Validation},
		{"long negative prompt", with(gen, func(r *provider.Request) { r.NegativePrompt = strings.Repeat("x", provider.MaxPromptLength) }), apperr.Validation},
		{"no images", with(gen, func(r *provider.Request) { r.Count = 0 }), apperr.Validation},
		{"five images", with(gen, func(r *provider.Request) { r.Count = 5 }), apperr.Validation},
		{"narrow", with(gen, func(r *provider.Request) { r.Width = provider.MinSide - 1 }), apperr.Validation},
		{"tall", with(gen, func(r *provider.Request) { r.Height = provider.MaxSide + 1 }), apperr.Validation},
		{"generation without size", with(gen, func(r *provider.Request) { r.Width, r.Height = 0, 0 }), apperr.Validation},
		{"edit without source", with(edit, func(r *provider.Request) { r.Source = nil }), apperr.Validation},
		{"edit with half a size", with(edit, func(r *provider.Request) { r.Width = 512 }), apperr.Validation},
		{"strength over 1", with(edit, func(r *provider.Request) { r.Strength = 1.5 }), apperr.Validation},
		{"negative strength", with(edit, func(r *provider.Request) { r.Strength = -0.1 }), apperr.Validation},
		{"NaN strength", with(edit, func(r *provider.Request) { r.Strength = math.NaN() }), apperr.Validation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := apperr.CodeOf(tt.req.Validate()); got != tt.want {
				t.Errorf("code: got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFitSize(t *testing.T) {
	tests := []struct {
		w, h, side   int
		wantW, wantH int
	}{
		{100, 50, 256, 100, 50},
		{1024, 1024, 256, 256, 256},
		{1536, 1024, 256, 256, 171},
		{1024, 1536, 256, 171, 256},
		{4000, 10, 256, 256, 1},
	}
	for _, tt := range tests {
		w, h := provider.FitSize(tt.w, tt.h, tt.side)
		if w != tt.wantW || h != tt.wantH {
			t.Errorf("FitSize(%d, %d, %d): got %dx%d, want %dx%d", tt.w, tt.h, tt.side, w, h, tt.wantW, tt.wantH)
		}
	}
}

func TestEncodePreview(t *testing.T) {
	tests := []struct {
		name         string
		img          image.Image
		wantW, wantH int
	}{
		{"large opaque", filled(image.NewRGBA(image.Rect(0, 0, 600, 300)), color.RGBA{200, 30, 30, 255}), 256, 128},
		{"small", filled(image.NewRGBA(image.Rect(0, 0, 40, 30)), color.RGBA{200, 30, 30, 255}), 40, 30},
		{"offset bounds", filled(image.NewRGBA(image.Rect(10, 10, 310, 110)), color.RGBA{200, 30, 30, 255}), 256, 85},
		{"transparent", image.NewNRGBA(image.Rect(0, 0, 300, 300)), 256, 256},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, ct, err := provider.EncodePreview(tt.img)
			if err != nil {
				t.Fatalf("EncodePreview: %v", err)
			}
			if ct != imaging.JPEG {
				t.Errorf("content type: got %v, want %v", ct, imaging.JPEG)
			}
			img, err := jpeg.Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("decode preview: %v", err)
			}
			if b := img.Bounds(); b.Dx() != tt.wantW || b.Dy() != tt.wantH {
				t.Errorf("size: got %dx%d, want %dx%d", b.Dx(), b.Dy(), tt.wantW, tt.wantH)
			}
		})
	}
	t.Run("transparency becomes white", func(t *testing.T) {
		data, _, err := provider.EncodePreview(image.NewNRGBA(image.Rect(0, 0, 8, 8)))
		if err != nil {
			t.Fatalf("EncodePreview: %v", err)
		}
		img, _ := jpeg.Decode(bytes.NewReader(data))
		if r, g, b, _ := img.At(4, 4).RGBA(); r>>8 < 250 || g>>8 < 250 || b>>8 < 250 {
			t.Errorf("colour: got %d,%d,%d, want white", r>>8, g>>8, b>>8)
		}
	})
}

func TestDecodeImage(t *testing.T) {
	src := filled(image.NewRGBA(image.Rect(0, 0, 30, 20)), color.RGBA{10, 120, 200, 255})
	var pngData, jpegData bytes.Buffer
	if err := png.Encode(&pngData, src); err != nil {
		t.Fatal(err)
	}
	if err := jpeg.Encode(&jpegData, src, nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		data     []byte
		wantType string
		wantCode apperr.Code
	}{
		{"png", pngData.Bytes(), imaging.PNG, ""},
		{"jpeg", jpegData.Bytes(), imaging.JPEG, ""},
		{"webp", []byte(imagingtest.WebPLossy3x2), imaging.WebP, ""},
		{"decompression bomb", imagingtest.BombPNG(100000, 100000), "", imaging.ImageTooLarge},
		{"16-bit, 40 megapixels", imagingtest.DeepPNG(8000, 5000), "", imaging.ImageTooLarge},
		{"text", []byte("not an image at all"), "", imaging.UnsupportedMediaType},
		{"truncated png", pngData.Bytes()[:40], "", imaging.InvalidImage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, ct, err := provider.DecodeImage(tt.data, imaging.Limits{})
			if got := apperr.CodeOf(err); got != tt.wantCode {
				t.Fatalf("code: got %v, want %v (%v)", got, tt.wantCode, err)
			}
			if err != nil {
				return
			}
			if ct != tt.wantType {
				t.Errorf("content type: got %v, want %v", ct, tt.wantType)
			}
			if img.Bounds().Empty() {
				t.Errorf("bounds: got %v, want a non-empty image", img.Bounds())
			}
		})
	}
}

func filled(img *image.RGBA, c color.RGBA) *image.RGBA {
	for y := img.Rect.Min.Y; y < img.Rect.Max.Y; y++ {
		for x := img.Rect.Min.X; x < img.Rect.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
	return img
}
