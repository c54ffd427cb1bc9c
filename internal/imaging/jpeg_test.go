package imaging

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func TestProcessStripsJPEGMetadata(t *testing.T) {
	base := encodeJPEG(t, gradient(40, 30, false), 90)
	jfifHead := []byte("JFIF\x00\x01\x02\x01\x00\x48\x00\x48")
	jfifWithThumb := append(append(bytes.Clone(jfifHead), 2, 1), "RGBrgb"...) // 2×1 thumbnail
	icc := jpegSegment(markerAPP2, []byte("ICC_PROFILE\x00\x01\x01fake profile"))
	adobe := jpegSegment(markerAPP14, []byte("Adobe\x00\x64\x00\x00\x00\x00\x01"))
	in := withJPEGSegments(base,
		jpegSegment(markerAPP0, jfifWithThumb),
		jpegSegment(markerAPP1, append([]byte("Exif\x00\x00"), exifTIFF(binary.LittleEndian, 8)...)),
		jpegSegment(markerAPP1, []byte("http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>Jane Doe</x:xmpmeta>")),
		icc,
		jpegSegment(markerAPP2, []byte("MPF\x00II*\x00")),
		jpegSegment(0xED, []byte("Photoshop 3.0\x008BIM\x04\x04")),
		adobe,
		jpegSegment(markerCOM, []byte("shot at 12 Main St")),
		jpegSegment(0xEB, []byte("JP\x00\x00jumb")), // APP11, JUMBF
	)

	info, out := mustProcess(t, in, testLimits())

	// Only the orientation survives, in an EXIF block of its own, so that the
	// photo still shows upright; the GPS position and everything else go.
	want := withJPEGSegments(base, jpegSegment(markerAPP0, append(jfifHead, 0, 0)),
		jpegSegment(markerAPP1, orientationOnlyExif(8)), icc, adobe)
	if !bytes.Equal(out, want) {
		t.Errorf("markers: got % X, want % X", jpegMarkers(t, out), jpegMarkers(t, want))
	}
	if got := exifOrientation(orientationOnlyExif(8)[6:]); got != 8 {
		t.Errorf("the kept EXIF block reads as orientation %d, want 8", got)
	}
	for _, s := range []string{"xmpmeta", "Photoshop", "Main St", "MPF", "RGBrgb", "jumb", "\x88\x25", "\x25\x88"} {
		if bytes.Contains(out, []byte(s)) {
			t.Errorf("output contains %q: got it, want it gone", s)
		}
	}
	if info.Orientation != 8 {
		t.Errorf("Orientation: got %v, want %v", info.Orientation, 8)
	}
	if info.Width != 40 || info.Height != 30 {
		t.Errorf("info size: got %d×%d, want 40×30", info.Width, info.Height)
	}
	if b := mustDecode(t, JPEG, out).Bounds(); b.Dx() != 40 || b.Dy() != 30 {
		t.Errorf("decoded size: got %v, want 40×30", b.Size())
	}
}

func TestUprightJPEGKeepsNoEXIF(t *testing.T) {
	base := encodeJPEG(t, gradient(20, 10, false), 90)
	in := withJPEGSegments(base, jpegSegment(markerAPP1, append([]byte("Exif\x00\x00"), exifTIFF(binary.BigEndian, 1)...)))
	_, out := mustProcess(t, in, testLimits())
	if bytes.Contains(out, []byte("Exif")) {
		t.Error("an upright photo kept an EXIF block")
	}
}

func TestOrientedThumbnailsAreUpright(t *testing.T) {
	// A 40×20 image that needs a quarter turn clockwise shows as 20×40.
	src := encodePNG(t, gradient(40, 20, false))
	thumbs, err := OrientedThumbnails(bytes.NewReader(src), 6, Limits{}, 256)
	if err != nil {
		t.Fatal(err)
	}
	if thumbs[0].Width != 20 || thumbs[0].Height != 40 {
		t.Fatalf("oriented thumbnail is %d×%d, want 20×40", thumbs[0].Width, thumbs[0].Height)
	}
	img := mustDecode(t, thumbs[0].ContentType, thumbs[0].Data)
	// Green grows down the source: its top row (no green) is now the right
	// column, its bottom row (most green) the left one.
	_, right, _, _ := img.At(19, 20).RGBA()
	_, left, _, _ := img.At(0, 20).RGBA()
	if right+0x4000 > left {
		t.Errorf("not turned clockwise: green %d on the right, %d on the left", right>>8, left>>8)
	}
}

func TestProcessCopiesProgressiveAndRestartScans(t *testing.T) {
	// A hand-made JPEG can't easily be progressive, but the scan copier is
	// the same for every scan: check that stuffed bytes, restart markers,
	// fill bytes and a second scan all come through.
	base := encodeJPEG(t, gradient(16, 16, false), 90)
	sos := bytes.LastIndex(base, []byte{0xFF, markerSOS})
	sosLen := int(binary.BigEndian.Uint16(base[sos+2:]))
	head, scan := base[:sos+2+sosLen], base[sos+2+sosLen:len(base)-2]

	var in bytes.Buffer
	in.Write(head)
	in.Write(scan)
	in.Write([]byte{0xFF, 0x00, 0xFF, 0xD3}) // stuffed 0xFF, RST3
	in.Write([]byte{0xFF, 0xFF, 0xFF})       // fill bytes before the next marker
	in.Write(base[sos : sos+2+sosLen])       // a second scan
	in.Write([]byte{0x12, 0xFF, 0x00})
	in.Write([]byte{0xFF, markerEOI})

	_, out := mustProcess(t, in.Bytes(), testLimits())

	var want bytes.Buffer
	want.Write(head)
	want.Write(scan)
	want.Write([]byte{0xFF, 0x00, 0xFF, 0xD3})
	want.Write(base[sos : sos+2+sosLen])
	want.Write([]byte{0x12, 0xFF, 0x00, 0xFF, markerEOI})
	if !bytes.Equal(out, want.Bytes()) {
		t.Errorf("output: got % X, want % X", out[len(head):], want.Bytes()[len(head):])
	}
}

// A JFIF segment too short to hold a thumbnail still tells the decoder that
// the data is YCbCr, even when the components are named R, G and B; before
// the fix Process dropped it, and the copy decoded as RGB: other colours.
// FuzzProcess's pixel check catches it; its corpus holds this image.
func TestShortJFIFIsKept(t *testing.T) {
	in := shortJFIFJPEG(t)
	_, out := mustProcess(t, in, testLimits())
	if !samePixels(mustDecode(t, JPEG, in), mustDecode(t, JPEG, out)) {
		t.Error("the cleaned copy decodes to other colours than the upload")
	}
}

// shortJFIFJPEG is a YCbCr JPEG whose components are named R, G and B, with
// a bare JFIF segment that says it is YCbCr all the same.
func shortJFIFJPEG(t testing.TB) []byte {
	base := encodeJPEG(t, gradient(16, 16, false), 90)
	// Name the components R, G, B in the frame and the scan header.
	sof := bytes.Index(base, []byte{0xFF, markerSOF0})
	sos := bytes.Index(base, []byte{0xFF, markerSOS})
	rgb := bytes.Clone(base)
	for i, id := range []byte("RGB") {
		rgb[sof+10+3*i] = id
		rgb[sos+5+2*i] = id
	}
	return withJPEGSegments(rgb, jpegSegment(markerAPP0, []byte("JFIF\x00")))
}
