package imaging

import (
	"bytes"
	"io"
	"testing"

	"github.com/fastimage/api/internal/apperr"
)

func TestSniff(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   string
		code   apperr.Code
	}{
		{"png", "\x89PNG\r\n\x1a\n\x00\x00\x00\x0d", PNG, ""},
		{"jpeg", "\xFF\xD8\xFF\xE0\x00\x10JFIF\x00\x01", JPEG, ""},
		{"webp", "RIFF\x00\x01\x00\x00WEBPVP8 ", WebP, ""},
		{"wav", "RIFF\x00\x01\x00\x00WAVEfmt ", "", UnsupportedMediaType},
		{"short riff", "RIFF\x00\x01", "", UnsupportedMediaType},
		{"gif", "GIF89a", "", UnsupportedMediaType},
		{"text", "hello.png", "", UnsupportedMediaType},
		{"png without its last byte", "\x89PNG\r\n\x1a", "", UnsupportedMediaType},
		{"empty", "", "", UnsupportedMediaType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Sniff([]byte(tt.header))
			if got != tt.want {
				t.Errorf("Sniff: got %q, want %q", got, tt.want)
			}
			checkCode(t, err, tt.code)
		})
	}
}

func TestProbe(t *testing.T) {
	jpegFile := encodeJPEG(t, gradient(40, 30, false), 90)
	jpegBomb := withJPEGSize(t, jpegFile, 50000, 50000, 0)
	tests := []struct {
		name string
		in   []byte
		want Header
		code apperr.Code
	}{
		{"png", encodePNG(t, gradient(40, 30, false)), Header{PNG, 40, 30, 0}, ""},
		{"jpeg", jpegFile, Header{JPEG, 40, 30, 0}, ""},
		{"webp", []byte(webpLossy3x2), Header{WebP, 3, 2, 0}, ""},
		{"webp VP8X", []byte(webpLossyAlpha3x2), Header{WebP, 3, 2, 0}, ""},
		// Only the header is given (for a JPEG without JFIF, Go reads up to
		// the scan header): Probe must decide from it alone.
		{"png bomb header", bombPNG(50000, 50000)[:8+25], Header{}, ImageTooLarge},
		{"jpeg bomb header", jpegBomb[:bytes.Index(jpegBomb, []byte{0xFF, markerSOS})+4], Header{}, ImageTooLarge},
		{"truncated header", encodePNG(t, gradient(4, 4, false))[:20], Header{}, InvalidImage},
		{"text", []byte("just text"), Header{}, UnsupportedMediaType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Probe(bytes.NewReader(tt.in), Limits{})
			checkCode(t, err, tt.code)
			if err == nil && got.DecodeBytes <= 0 {
				t.Errorf("Probe: DecodeBytes %d, want it positive", got.DecodeBytes)
			}
			got.DecodeBytes = 0
			if got != tt.want {
				t.Errorf("Probe: got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestProbeReportsReadFailure(t *testing.T) {
	r := io.MultiReader(bytes.NewReader([]byte("\x89PNG\r\n\x1a\n\x00\x00")), iotestErrReader{})
	_, err := Probe(r, Limits{})
	checkCode(t, err, apperr.Internal)
}
