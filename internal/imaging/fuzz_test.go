package imaging

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/imaging/imagingtest"
)

// updateSeeds rewrites the committed seed files of the fuzz targets from
// the helpers that make them: go test ./internal/imaging -run TestFuzzSeeds -update-seeds
var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz seed images from the fixtures")

// fuzzLimits keep each fuzzed input cheap: a megapixel and 16 MB to decode.
var fuzzLimits = Limits{MaxBytes: 1 << 20, MaxPixels: 1 << 20, MaxDecodeBytes: 16 << 20}

// seedImages are real files of each format carrying the metadata Process
// must remove (EXIF with GPS, XMP, IPTC, comments, text chunks, thumbnails,
// trailers), and the chunks it must keep. They are the seed corpus of the
// image fuzz targets, committed under testdata/fuzz/<target>/ as files
// (TestFuzzSeedsAreCurrent keeps them equal to what this function makes).
func seedImages(t testing.TB) map[string][]byte {
	jpegBase := encodeJPEG(t, gradient(24, 16, false), 80)
	grayJPEG := encodeJPEG(t, image.NewGray(image.Rect(0, 0, 9, 7)), 75)
	pngBase := encodePNG(t, gradient(12, 9, true))
	paletted := image.NewPaletted(image.Rect(0, 0, 5, 4), color.Palette{color.Black, color.White, color.Transparent})
	paletted.Pix[3] = 2
	exifGPS := append([]byte("Exif\x00\x00"), exifTIFF(binary.LittleEndian, 6)...)
	vp8l := riffChunk("VP8L", []byte(webpLossless3x2)[20:])
	oddExif := exifTIFF(binary.BigEndian, 8)
	if len(oddExif)%2 == 0 {
		oddExif = append(oddExif, 0)
	}
	return map[string][]byte{
		"jpeg-exif-gps-xmp-iptc": withJPEGSegments(jpegBase,
			jpegSegment(markerAPP0, []byte("JFIF\x00\x01\x02\x01\x00\x48\x00\x48\x02\x01RGBrgb")),
			jpegSegment(markerAPP1, exifGPS),
			jpegSegment(markerAPP1, []byte("http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>Jane Doe</x:xmpmeta>")),
			jpegSegment(markerAPP2, []byte("ICC_PROFILE\x00\x01\x01fake profile")),
			jpegSegment(markerAPP2, []byte("MPF\x00II*\x00")),
			jpegSegment(0xED, []byte("Photoshop 3.0\x008BIM\x04\x04")),
			jpegSegment(markerAPP14, []byte("Adobe\x00\x64\x00\x00\x00\x00\x01")),
			jpegSegment(markerCOM, []byte("shot at 12 Main St")),
		),
		"jpeg-orientation-trailer":  append(imagingtest.JPEGWithExif(10, 6, 3), "trailing vendor data"...),
		"jpeg-gray":                 grayJPEG,
		"jpeg-rgb-names-short-jfif": shortJFIFJPEG(t),
		"png-text-exif-time": withPNGChunks(pngBase,
			pngChunk("tEXt", []byte("Author\x00Jane Doe, 12 Main St")),
			pngChunk("eXIf", exifTIFF(binary.BigEndian, 6)),
			pngChunk("gAMA", binary.BigEndian.AppendUint32(nil, 45455)),
			pngChunk("iTXt", []byte("XML:com.adobe.xmp\x00\x00\x00\x00\x00<x:xmpmeta/>")),
			pngChunk("tIME", []byte{0x07, 0xE8, 1, 2, 3, 4, 5}),
			pngChunk("pHYs", []byte{0, 0, 0x0B, 0x13, 0, 0, 0x0B, 0x13, 1}),
			pngChunk("prVt", []byte("private vendor data")),
		),
		"png-paletted-apng": withPNGChunks(encodePNG(t, paletted), pngChunk("acTL", []byte{0, 0, 0, 1, 0, 0, 0, 0})),
		"png-16bit":         imagingtest.DeepPNG(6, 4),
		"webp-lossless":     []byte(webpLossless3x2),
		"webp-lossy":        []byte(webpLossy3x2),
		"webp-lossy-alpha":  []byte(webpLossyAlpha3x2),
		"webp-extended-exif-xmp": webpFile(
			vp8xChunk(1<<5|vp8xEXIF|vp8xXMP, 3, 2),
			riffChunk("ICCP", []byte("fake profile")),
			vp8l,
			riffChunk("EXIF", oddExif),
			riffChunk("XMP ", []byte("<x:xmpmeta>Jane Doe</x:xmpmeta>")),
			riffChunk("ZZZZ", []byte("unknown")),
		),
		"png-bomb": bombPNG(9000, 9000),
	}
}

// corpusFile is a seed in the format of go test's corpus files.
func corpusFile(data []byte) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", data)
}

// The committed seed files are what seedImages makes: a change to the
// fixtures shows up here until the seeds are rewritten (-update-seeds).
func TestFuzzSeedsAreCurrent(t *testing.T) {
	for _, target := range []string{"FuzzProcess", "FuzzThumbnails", "FuzzProbe"} {
		dir := filepath.Join("testdata", "fuzz", target)
		for name, data := range seedImages(t) {
			path := filepath.Join(dir, "seed-"+name)
			want := corpusFile(data)
			if *updateSeeds {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s is not what seedImages makes (err %v); run go test ./internal/imaging -run TestFuzzSeeds -update-seeds", path, err)
			}
		}
	}
}

// FuzzProcess feeds any bytes to Process. Whatever the input: no panic, and
// a refusal carries one of Process's codes. What it accepts comes out
// clean (no EXIF but the orientation, no XMP, IPTC, comment, text chunk,
// trailer or unknown chunk), described exactly by Info, unchanged by a
// second cleaning, and — when the input decodes — decoding to the same
// pixels.
func FuzzProcess(f *testing.F) {
	for _, seed := range seedImages(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		info, err := Process(bytes.NewReader(data), &out, fuzzLimits)
		if err != nil {
			switch apperr.CodeOf(err) {
			case UnsupportedMediaType, InvalidImage, ImageTooLarge, PayloadTooLarge:
			default:
				t.Fatalf("Process: got %v (code %v), want an error with one of the package's codes", err, apperr.CodeOf(err))
			}
			return
		}
		clean := out.Bytes()
		sum := sha256.Sum256(clean)
		if info.Bytes != int64(len(clean)) || info.SHA256 != hex.EncodeToString(sum[:]) {
			t.Fatalf("Info says %d bytes with sha256 %s; got %d bytes with %x", info.Bytes, info.SHA256, len(clean), sum)
		}
		if ct, err := Sniff(clean); err != nil || ct != info.ContentType {
			t.Fatalf("the cleaned copy sniffs as %q (%v), Info says %q", ct, err, info.ContentType)
		}
		if info.Width <= 0 || info.Height <= 0 || int64(info.Width)*int64(info.Height) > fuzzLimits.MaxPixels {
			t.Fatalf("accepted a %d × %d image", info.Width, info.Height)
		}
		if info.Orientation < 0 || info.Orientation > 8 {
			t.Fatalf("Orientation %d", info.Orientation)
		}
		checkClean(t, info.ContentType, clean)

		var again bytes.Buffer
		info2, err := Process(bytes.NewReader(clean), &again, fuzzLimits)
		if err != nil {
			t.Fatalf("cleaning the cleaned copy: %v", err)
		}
		if !bytes.Equal(again.Bytes(), clean) || info2.Width != info.Width || info2.Height != info.Height {
			t.Fatalf("cleaning twice changed the copy:\nonce  % X\ntwice % X", clean, again.Bytes())
		}

		in, err := codecFor(info.ContentType).decode(bytes.NewReader(data))
		if err != nil {
			return // Process copies bytes; it does not promise they decode
		}
		got, err := codecFor(info.ContentType).decode(bytes.NewReader(clean))
		if err != nil {
			t.Fatalf("the input decodes but its cleaned copy does not: %v", err)
		}
		if b := in.Bounds(); b.Dx() != info.Width || b.Dy() != info.Height {
			t.Fatalf("the input decodes to %v, Info says %d × %d", b.Size(), info.Width, info.Height)
		}
		if !samePixels(in, got) {
			t.Fatal("the cleaned copy decodes to other pixels than the input")
		}
	})
}

// FuzzThumbnails feeds any bytes to OrientedThumbnails, which decodes them:
// no panic, a refusal carries a code, and every preview is a real image of
// its type within the size asked for.
func FuzzThumbnails(f *testing.F) {
	for _, seed := range seedImages(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const side = 8
		orientation := 1 + len(data)%8 // each of the eight turns, as inputs vary
		thumbs, err := OrientedThumbnails(bytes.NewReader(data), orientation, fuzzLimits, 2*side, side)
		if err != nil {
			switch apperr.CodeOf(err) {
			case UnsupportedMediaType, InvalidImage, ImageTooLarge:
			default:
				t.Fatalf("OrientedThumbnails: got %v (code %v), want an error with one of the package's codes", err, apperr.CodeOf(err))
			}
			return
		}
		for i, th := range thumbs {
			img := mustDecode(t, th.ContentType, th.Data)
			b := img.Bounds()
			if b.Dx() != th.Width || b.Dy() != th.Height || max(th.Width, th.Height) > 2*side>>i || th.Width < 1 || th.Height < 1 {
				t.Fatalf("preview %d: %v, says %d × %d, asked for at most %d", i, b.Size(), th.Width, th.Height, 2*side>>i)
			}
		}
	})
}

// FuzzExifOrientation reads any bytes as an EXIF block: no panic, and the
// answer is 0 or an orientation.
func FuzzExifOrientation(f *testing.F) {
	f.Add(exifTIFF(binary.LittleEndian, 6))
	f.Add(exifTIFF(binary.BigEndian, 8))
	f.Add(orientationOnlyExif(5))
	f.Add([]byte("Exif\x00\x00MM\x00*\xff\xff\xff\xf0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if o := exifOrientation(b); o < 0 || o > 8 {
			t.Fatalf("orientation %d", o)
		}
	})
}

// checkClean fails unless b, a copy Process wrote, holds only what Process
// keeps and ends where the image ends.
func checkClean(t *testing.T, contentType string, b []byte) {
	t.Helper()
	switch contentType {
	case JPEG:
		checkCleanJPEG(t, b)
	case PNG:
		for i := 8; ; {
			n := int(binary.BigEndian.Uint32(b[i:]))
			typ := [4]byte(b[i+4 : i+8])
			if !keepPNGChunk(typ) {
				t.Fatalf("the cleaned PNG keeps a %q chunk", typ[:])
			}
			i += 12 + n
			if string(typ[:]) == "IEND" {
				if i != len(b) {
					t.Fatalf("the cleaned PNG has %d bytes after IEND", len(b)-i)
				}
				return
			}
		}
	case WebP:
		if got := int(binary.LittleEndian.Uint32(b[4:8])); got != len(b)-8 {
			t.Fatalf("RIFF size %d, file %d bytes", got, len(b))
		}
		for i := 12; i < len(b); {
			fourCC := string(b[i : i+4])
			n := int(binary.LittleEndian.Uint32(b[i+4:]))
			if !slices.Contains([]string{"VP8X", "VP8 ", "VP8L", "ANMF", "ALPH", "ICCP", "ANIM"}, fourCC) {
				t.Fatalf("the cleaned WebP keeps a %q chunk", fourCC)
			}
			if fourCC == "VP8X" && b[i+8]&(vp8xEXIF|vp8xXMP) != 0 {
				t.Fatalf("the cleaned WebP announces metadata: VP8X flags %#x", b[i+8])
			}
			i += 8 + n + n%2
		}
	}
}

// checkCleanJPEG walks the segments and scans of a cleaned JPEG.
func checkCleanJPEG(t *testing.T, b []byte) {
	t.Helper()
	i := 2
	for {
		if i+2 > len(b) || b[i] != 0xFF {
			t.Fatalf("the cleaned JPEG has no marker at byte %d", i)
		}
		marker := b[i+1]
		i += 2
		if marker == markerEOI {
			if i != len(b) {
				t.Fatalf("the cleaned JPEG has %d bytes after EOI", len(b)-i)
			}
			return
		}
		if marker == markerTEM || marker >= markerRST0 && marker <= markerRST7 {
			continue
		}
		n := int(binary.BigEndian.Uint16(b[i:]))
		payload := b[i+2 : i+n]
		i += n
		switch {
		case marker == markerAPP0:
			if !bytes.HasPrefix(payload, []byte("JFIF\x00")) || len(payload) > 14 || len(payload) == 14 && (payload[12] != 0 || payload[13] != 0) {
				t.Fatalf("the cleaned JPEG keeps an APP0 other than a bare JFIF: %q", payload)
			}
		case marker == markerAPP1:
			o := exifOrientation(payload)
			if !bytes.Equal(payload, orientationOnlyExif(o)) || o < 2 {
				t.Fatalf("the cleaned JPEG keeps an APP1 other than the orientation alone: %q", payload)
			}
		case marker == markerAPP2:
			if !bytes.HasPrefix(payload, []byte("ICC_PROFILE\x00")) {
				t.Fatalf("the cleaned JPEG keeps an APP2 other than ICC: %q", payload)
			}
		case marker == markerAPP14:
			if !bytes.HasPrefix(payload, []byte("Adobe")) {
				t.Fatalf("the cleaned JPEG keeps an APP14 other than Adobe: %q", payload)
			}
		case marker >= markerAPP0 && marker <= markerAPP15 || marker == markerCOM:
			t.Fatalf("the cleaned JPEG keeps a segment %#X: %q", marker, payload)
		case marker == markerSOS:
			// Entropy-coded data up to the next marker that is not a
			// stuffed byte or a restart.
			for i < len(b) && (b[i] != 0xFF || i+1 < len(b) && (b[i+1] == 0 || b[i+1] >= markerRST0 && b[i+1] <= markerRST7)) {
				if b[i] == 0xFF {
					i++
				}
				i++
			}
		}
	}
}

// samePixels reports whether a and b have the same bounds and colours.
func samePixels(a, b image.Image) bool {
	if a.Bounds() != b.Bounds() {
		return false
	}
	r := a.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if a.At(x, y) != b.At(x, y) {
				ar, ag, ab, aa := a.At(x, y).RGBA()
				br, bg, bb, ba := b.At(x, y).RGBA()
				if ar != br || ag != bg || ab != bb || aa != ba {
					return false
				}
			}
		}
	}
	return true
}
