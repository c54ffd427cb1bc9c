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

	want := withJPEGSegments(base, jpegSegment(markerAPP0, append(jfifHead, 0, 0)), icc, adobe)
	if !bytes.Equal(out, want) {
		t.Errorf("markers: got % X, want % X", jpegMarkers(t, out), jpegMarkers(t, want))
	}
	for _, s := range []string{"Exif", "xmpmeta", "Photoshop", "Main St", "MPF", "RGBrgb", "jumb"} {
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
