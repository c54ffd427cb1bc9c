package imaging

import (
	"bytes"
	"encoding/binary"
)

// exifOrientation returns the Orientation tag (0x0112) of IFD0 in an EXIF
// block, or 0 when there is none or the block is malformed. b is a TIFF
// structure, optionally preceded by the "Exif\0\0" that JPEG's APP1 uses and
// some writers also put in PNG and WebP.
func exifOrientation(b []byte) int {
	b = bytes.TrimPrefix(b, []byte("Exif\x00\x00"))
	if len(b) < 8 {
		return 0
	}
	var order binary.ByteOrder
	switch string(b[:4]) {
	case "II*\x00":
		order = binary.LittleEndian
	case "MM\x00*":
		order = binary.BigEndian
	default:
		return 0
	}
	ifd := int64(order.Uint32(b[4:8]))
	if ifd+2 > int64(len(b)) {
		return 0
	}
	count := int64(order.Uint16(b[ifd:]))
	for i := range count {
		e := ifd + 2 + 12*i
		if e+12 > int64(len(b)) {
			return 0
		}
		if order.Uint16(b[e:]) != 0x0112 {
			continue
		}
		const typeShort = 3
		if order.Uint16(b[e+2:]) != typeShort || order.Uint32(b[e+4:]) != 1 {
			return 0
		}
		if v := int(order.Uint16(b[e+8:])); v >= 1 && v <= 8 {
			return v
		}
		return 0
	}
	return 0
}

// orientationOnlyExif is an APP1 EXIF payload holding nothing but the
// Orientation tag: a big-endian TIFF header and one IFD with one entry.
func orientationOnlyExif(orientation int) []byte {
	b := []byte("Exif\x00\x00MM\x00*\x00\x00\x00\x08") // TIFF header, IFD0 at 8
	b = append(b, 0, 1)                                // one entry
	b = append(b, 0x01, 0x12, 0, 3, 0, 0, 0, 1)        // Orientation, SHORT, count 1
	b = append(b, 0, byte(orientation), 0, 0)          // the value, left-justified
	return append(b, 0, 0, 0, 0)                       // no next IFD
}
