package imaging

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/fastimage/api/internal/apperr"
)

func TestProcessAccepts(t *testing.T) {
	// None of these carries metadata, so the cleaned copy must be the input,
	// byte for byte, up to the end of the image.
	small := encodePNG(t, gradient(4, 4, false))
	tests := []struct {
		name        string
		in          []byte
		contentType string
		w, h        int
		trailing    int // bytes after the image, which are dropped
	}{
		{"png", encodePNG(t, gradient(40, 30, false)), PNG, 40, 30, 0},
		{"png with alpha", encodePNG(t, gradient(7, 300, true)), PNG, 7, 300, 0},
		{"jpeg", encodeJPEG(t, gradient(40, 30, false), 90), JPEG, 40, 30, 0},
		{"webp lossless", []byte(webpLossless3x2), WebP, 3, 2, 0},
		{"webp lossy", []byte(webpLossy3x2), WebP, 3, 2, 0},
		{"webp lossy with alpha (VP8X)", []byte(webpLossyAlpha3x2), WebP, 3, 2, 0},
		{"png followed by a zip", append(small, "PK\x03\x04zip"...), PNG, 4, 4, 7},
		{"jpeg followed by a trailer", append(encodeJPEG(t, gradient(5, 5, false), 80), "SEFHvendor"...), JPEG, 5, 5, 10},
		{"webp followed by junk", append([]byte(webpLossy3x2), "junk"...), WebP, 3, 2, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, out := mustProcess(t, tt.in, testLimits())
			if info.ContentType != tt.contentType || info.Width != tt.w || info.Height != tt.h {
				t.Errorf("info: got %v %d×%d, want %v %d×%d", info.ContentType, info.Width, info.Height, tt.contentType, tt.w, tt.h)
			}
			want := tt.in[:len(tt.in)-tt.trailing]
			if !bytes.Equal(out, want) {
				t.Errorf("output: got %d bytes, want the %d input bytes unchanged", len(out), len(want))
			}
			b := mustDecode(t, info.ContentType, out).Bounds()
			if b.Dx() != tt.w || b.Dy() != tt.h {
				t.Errorf("decoded size: got %d×%d, want %d×%d", b.Dx(), b.Dy(), tt.w, tt.h)
			}
		})
	}
}

func TestProcessRejects(t *testing.T) {
	pngFile := encodePNG(t, gradient(40, 30, false))
	jpegFile := encodeJPEG(t, gradient(40, 30, false), 90)
	corruptCRC := bytes.Clone(pngFile)
	corruptCRC[len(corruptCRC)-20] ^= 0xFF // inside IDAT
	corruptDropped := withPNGChunks(pngFile, pngChunk("tEXt", []byte("Comment\x00hello")))
	corruptDropped[8+25+10] ^= 0xFF // inside the tEXt that would be dropped
	lyingRIFF := webpFile(riffChunk("VP8L", []byte(webpLossless3x2)[20:]))
	binary.LittleEndian.PutUint32(lyingRIFF[4:], 20) // less than its chunk

	tests := []struct {
		name   string
		in     []byte
		limits Limits
		want   apperr.Code
	}{
		{"text file named .png", []byte("hello, I am a text file called photo.png\n"), testLimits(), UnsupportedMediaType},
		{"empty", nil, testLimits(), UnsupportedMediaType},
		{"gif", []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"), testLimits(), UnsupportedMediaType},
		{"svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`), testLimits(), UnsupportedMediaType},
		{"riff that is not webp", []byte("RIFF\x04\x00\x00\x00WAVE"), testLimits(), UnsupportedMediaType},
		{"lossless jpeg", withJPEGSize(t, jpegFile, 40, 30, 0xC3), testLimits(), UnsupportedMediaType},

		{"png truncated in IDAT", pngFile[:len(pngFile)/2], testLimits(), InvalidImage},
		{"png without IEND", pngFile[:len(pngFile)-12], testLimits(), InvalidImage},
		{"png signature only", pngFile[:8], testLimits(), InvalidImage},
		{"png with bad CRC", corruptCRC, testLimits(), InvalidImage},
		{"png with bad CRC in a dropped chunk", corruptDropped, testLimits(), InvalidImage},
		{"jpeg truncated in scan", jpegFile[:len(jpegFile)/2], testLimits(), InvalidImage},
		{"jpeg without EOI", jpegFile[:len(jpegFile)-2], testLimits(), InvalidImage},
		{"jpeg truncated in headers", jpegFile[:100], testLimits(), InvalidImage},
		{"jpeg with no frame", []byte{0xFF, 0xD8, 0xFF, 0xD9}, testLimits(), InvalidImage},
		{"webp truncated", []byte(webpLossy3x2)[:50], testLimits(), InvalidImage},
		{"webp truncated VP8X", []byte(webpLossyAlpha3x2)[:60], testLimits(), InvalidImage},
		{"webp chunk larger than RIFF", lyingRIFF, testLimits(), InvalidImage},
		{"webp without image chunk", webpFile(vp8xChunk(0, 3, 2), riffChunk("EXIF", exifTIFF(binary.LittleEndian, 1))), testLimits(), InvalidImage},

		{"png over MaxBytes", pngFile, Limits{MaxBytes: int64(len(pngFile)) - 1}, PayloadTooLarge},
		{"jpeg over MaxBytes", jpegFile, Limits{MaxBytes: int64(len(jpegFile)) - 1}, PayloadTooLarge},
		{"webp declaring more than MaxBytes", []byte(webpLossy3x2), Limits{MaxBytes: 64}, PayloadTooLarge},
		{"MaxBytes smaller than a signature", pngFile, Limits{MaxBytes: 4}, PayloadTooLarge},

		{"png bomb 50000×50000", bombPNG(50000, 50000), testLimits(), ImageTooLarge},
		{"png over a small cap", pngFile, Limits{MaxBytes: 1 << 20, MaxPixels: 40*30 - 1}, ImageTooLarge},
		{"jpeg bomb 50000×50000", withJPEGSize(t, jpegFile, 50000, 50000, 0), testLimits(), ImageTooLarge},
		{"webp VP8X bomb", webpFile(vp8xChunk(0, 16384, 16384), riffChunk("VP8L", []byte(webpLossless3x2)[20:])), testLimits(), ImageTooLarge},
		{"webp VP8L bomb", webpFile(riffChunk("VP8L", []byte{0x2F, 0xFF, 0xFF, 0xFF, 0x0F})), testLimits(), ImageTooLarge},
		{"png declaring 0×0", bombPNG(0, 0), testLimits(), InvalidImage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := Process(bytes.NewReader(tt.in), &out, tt.limits)
			checkCode(t, err, tt.want)
			if tt.want == ImageTooLarge && tt.in[0] == 0x89 && out.Len() != 0 {
				t.Errorf("bytes written for a PNG bomb: got %v, want 0", out.Len())
			}
		})
	}
}

func TestProcessAcceptsExactlyMaxBytes(t *testing.T) {
	for _, in := range [][]byte{encodePNG(t, gradient(9, 9, false)), encodeJPEG(t, gradient(9, 9, false), 80), []byte(webpLossy3x2)} {
		mustProcess(t, in, Limits{MaxBytes: int64(len(in))})
	}
}

func TestProcessRequiresMaxBytes(t *testing.T) {
	_, err := Process(bytes.NewReader([]byte(webpLossy3x2)), io.Discard, Limits{})
	checkCode(t, err, apperr.Internal)
}

// endlessPNG is a PNG whose one IDAT chunk declares 2 GiB and whose data
// never ends, counting the bytes read from it.
type endlessPNG struct {
	head []byte
	read int64
}

func (e *endlessPNG) Read(p []byte) (int, error) {
	n := copy(p, e.head)
	e.head = e.head[n:]
	for i := n; i < len(p); i++ {
		p[i] = 0xAB
	}
	e.read += int64(len(p))
	return len(p), nil
}

func TestProcessStopsReadingAtCap(t *testing.T) {
	head := encodePNG(t, gradient(4, 4, false))[:8+25]
	head = append(head, 0x7F, 0xFF, 0xFF, 0xFF, 'I', 'D', 'A', 'T')
	r := &endlessPNG{head: head}
	const limit = 1 << 20
	_, err := Process(r, io.Discard, Limits{MaxBytes: limit})
	checkCode(t, err, PayloadTooLarge)
	if r.read > limit+1 {
		t.Errorf("bytes read: got %v, want at most %v", r.read, limit+1)
	}
}

// failingWriter fails after accepting n bytes.
type failingWriter struct{ n int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		k := f.n
		f.n = 0
		return k, errors.New("disk full")
	}
	f.n -= len(p)
	return len(p), nil
}

func TestProcessReportsWriteAndReadFailures(t *testing.T) {
	in := encodeJPEG(t, noise(300, 300, 1), 95) // larger than the write buffer
	_, err := Process(bytes.NewReader(in), &failingWriter{n: 1000}, testLimits())
	checkCode(t, err, apperr.Internal)

	broken := io.MultiReader(bytes.NewReader(in[:5000]), iotestErrReader{})
	_, err = Process(broken, io.Discard, testLimits())
	checkCode(t, err, apperr.Internal)
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

// TestProcessMemoryIsFlat checks that Process streams: cleaning a JPEG of
// several megabytes allocates a fixed few hundred kilobytes (buffers, one
// JPEG segment), not a copy of the file.
func TestProcessMemoryIsFlat(t *testing.T) {
	in := encodeJPEG(t, noise(2000, 1500, 7), 100)
	if len(in) < 4<<20 {
		t.Fatalf("fixture: got %d bytes, want at least 4 MiB", len(in))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	info, err := Process(bytes.NewReader(in), io.Discard, Limits{MaxBytes: 64 << 20})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatalf("Process: got %v, want no error", err)
	}
	if info.Bytes != int64(len(in)) {
		t.Errorf("Bytes: got %v, want %v", info.Bytes, len(in))
	}
	const budget = 512 << 10
	if got := after.TotalAlloc - before.TotalAlloc; got > budget {
		t.Errorf("bytes allocated for a %d-byte file: got %v, want at most %v", len(in), got, budget)
	}
}
