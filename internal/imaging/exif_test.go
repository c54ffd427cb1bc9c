package imaging

import (
	"encoding/binary"
	"testing"
)

func TestExifOrientation(t *testing.T) {
	le := exifTIFF(binary.LittleEndian, 6)
	badType := exifTIFF(binary.LittleEndian, 6)
	badType[8+2+2] = 4 // Orientation as LONG
	tests := []struct {
		name string
		in   []byte
		want int
	}{
		{"little-endian", le, 6},
		{"big-endian", exifTIFF(binary.BigEndian, 3), 3},
		{"with Exif prefix", append([]byte("Exif\x00\x00"), le...), 6},
		{"out of range", exifTIFF(binary.LittleEndian, 9), 0},
		{"wrong type", badType, 0},
		{"truncated IFD", le[:20], 0},
		{"IFD offset past the end", []byte("II*\x00\xFF\xFF\x00\x00"), 0},
		{"not TIFF", []byte("hello, world"), 0},
		{"empty", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := exifOrientation(tt.in); got != tt.want {
				t.Errorf("exifOrientation: got %v, want %v", got, tt.want)
			}
		})
	}
}
