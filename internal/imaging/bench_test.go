package imaging

import (
	"bytes"
	"io"
	"testing"
)

// bigJPEG returns a noisy JPEG of at least minBytes, growing the image until
// it gets there (noise at quality 100 is about 2 bytes a pixel).
func bigJPEG(b *testing.B, minBytes int) []byte {
	b.Helper()
	side := 2300
	for {
		data := encodeJPEG(b, noise(side, side, 42), 100)
		if len(data) >= minBytes {
			return data
		}
		side += side / 10
	}
}

func BenchmarkProcessJPEG10MiB(b *testing.B) {
	in := bigJPEG(b, 10<<20)
	limits := Limits{MaxBytes: 64 << 20}
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Process(bytes.NewReader(in), io.Discard, limits); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkThumbnails(b *testing.B) {
	in := encodeJPEG(b, gradient(4000, 3000, false), 90) // a 12 MP photo
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Thumbnails(bytes.NewReader(in), 1024, 256); err != nil {
			b.Fatal(err)
		}
	}
}
