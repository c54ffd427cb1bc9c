package imaging

import (
	"bytes"
	"encoding/binary"
	"io"
)

// VP8X flag bits that announce metadata chunks.
const (
	vp8xXMP  = 1 << 2
	vp8xEXIF = 1 << 3
)

// stripWebP copies a WebP from src to out without its EXIF and XMP chunks.
//
// A WebP is a RIFF file, and the RIFF header states the size of everything
// after it, so the output's size must be known before its first byte is
// written. That decides the strategy:
//
//   - A simple WebP (one VP8 or VP8L chunk, the usual output of encoders) has
//     nowhere to put metadata. Its output size follows from the first chunk
//     header, so it is streamed like PNG and JPEG.
//   - An extended WebP (VP8X first) keeps its metadata at the end, after the
//     image data, and an io.Reader cannot skip ahead to learn how big those
//     chunks are. Its kept chunks are therefore buffered in memory and written
//     once the end is reached. The buffer never exceeds the input, which is
//     capped by Limits.MaxBytes; a RIFF header that declares more than that is
//     refused before anything is buffered. Extended WebPs are the rare case
//     (alpha from lossy encoders, animation, ICC), so this bounded buffer was
//     preferred over spooling to disk or requiring an io.WriteSeeker.
//
// Kept chunks: VP8X (with the EXIF and XMP flags cleared), ICCP, ANIM, ANMF,
// ALPH, VP8, VP8L. Dropped: EXIF, XMP and every unknown chunk. Bytes after
// the RIFF size, or after the image chunk of a simple WebP, are not read.
func stripWebP(src *source, out io.Writer, maxBytes, maxPixels, maxDecodeBytes int64) (Info, error) {
	var riff [12]byte
	if err := src.readFull(riff[:]); err != nil {
		return Info{}, err
	}
	riffSize := int64(binary.LittleEndian.Uint32(riff[4:8]))
	if riffSize+8 > maxBytes {
		return Info{}, payloadTooLarge(maxBytes)
	}
	left := riffSize - 4 // bytes of chunks after "WEBP"

	fourCC, size, err := nextWebPChunk(src, &left)
	if err != nil {
		return Info{}, err
	}
	switch fourCC {
	case "VP8 ", "VP8L":
		return streamSimpleWebP(src, out, fourCC, size, maxPixels, maxDecodeBytes)
	case "VP8X":
		return bufferExtendedWebP(src, out, size, left, maxPixels, maxDecodeBytes)
	}
	return Info{}, invalid("The WebP file is corrupt.")
}

// nextWebPChunk reads a chunk header and checks that the chunk, with its pad
// byte, fits in the left bytes of the RIFF body, which it then reduces.
func nextWebPChunk(src *source, left *int64) (string, uint32, error) {
	var hdr [8]byte
	if *left < int64(len(hdr)) {
		return "", 0, invalid("The WebP file is corrupt.")
	}
	if err := src.readFull(hdr[:]); err != nil {
		return "", 0, err
	}
	size := binary.LittleEndian.Uint32(hdr[4:8])
	total := int64(len(hdr)) + int64(size) + int64(size&1)
	if total > *left {
		return "", 0, invalid("The WebP file is corrupt.")
	}
	*left -= total
	return string(hdr[0:4]), size, nil
}

func streamSimpleWebP(src *source, out io.Writer, fourCC string, size uint32, maxPixels, maxDecodeBytes int64) (Info, error) {
	var (
		width, height int
		ok            bool
	)
	if fourCC == "VP8 " {
		head, err := src.peek(min(int(size), 10))
		if err != nil {
			return Info{}, err
		}
		width, height, ok = vp8Size(head)
	} else {
		head, err := src.peek(min(int(size), 5))
		if err != nil {
			return Info{}, err
		}
		width, height, ok = vp8lSize(head)
	}
	if !ok {
		return Info{}, invalid("The WebP file is corrupt.")
	}
	if err := checkPixels(int64(width), int64(height), maxPixels); err != nil {
		return Info{}, err
	}
	if err := checkDecodeBytes(webpDecodeBytes(int64(width), int64(height), fourCC), maxDecodeBytes); err != nil {
		return Info{}, err
	}

	var hdr [20]byte
	padded := int64(size) + int64(size&1)
	copy(hdr[0:4], "RIFF")
	binary.LittleEndian.PutUint32(hdr[4:8], uint32(4+8+padded))
	copy(hdr[8:16], "WEBP"+fourCC)
	binary.LittleEndian.PutUint32(hdr[16:20], size)
	if _, err := out.Write(hdr[:]); err != nil {
		return Info{}, err
	}
	if err := copyWebPPayload(src, out, size); err != nil {
		return Info{}, err
	}
	return Info{Width: width, Height: height}, nil
}

func bufferExtendedWebP(src *source, out io.Writer, size uint32, left int64, maxPixels, maxDecodeBytes int64) (Info, error) {
	if size != 10 {
		return Info{}, invalid("The WebP file is corrupt.")
	}
	var vp8x [8 + 10]byte
	copy(vp8x[0:4], "VP8X")
	binary.LittleEndian.PutUint32(vp8x[4:8], 10)
	flags := vp8x[8:]
	if err := src.readFull(flags); err != nil {
		return Info{}, err
	}
	width := 1 + (int64(flags[4]) | int64(flags[5])<<8 | int64(flags[6])<<16)
	height := 1 + (int64(flags[7]) | int64(flags[8])<<8 | int64(flags[9])<<16)
	if err := checkPixels(width, height, maxPixels); err != nil {
		return Info{}, err
	}
	if err := checkDecodeBytes(webpDecodeBytes(width, height, "VP8X"), maxDecodeBytes); err != nil {
		return Info{}, err
	}
	flags[0] &^= vp8xEXIF | vp8xXMP

	info := Info{Width: int(width), Height: int(height)}
	var body bytes.Buffer
	hasImage := false
	for left > 0 {
		fourCC, size, err := nextWebPChunk(src, &left)
		if err != nil {
			return Info{}, err
		}
		switch fourCC {
		case "VP8 ", "VP8L", "ANMF", "ALPH", "ICCP", "ANIM":
			hasImage = hasImage || fourCC == "VP8 " || fourCC == "VP8L" || fourCC == "ANMF"
			var hdr [8]byte
			copy(hdr[0:4], fourCC)
			binary.LittleEndian.PutUint32(hdr[4:8], size)
			body.Write(hdr[:])
			if err := copyWebPPayload(src, &body, size); err != nil {
				return Info{}, err
			}
		case "EXIF":
			skip := int64(size) + int64(size&1)
			if info.Orientation == 0 {
				exif := make([]byte, min(size, maxEXIFRead))
				if err := src.readFull(exif); err != nil {
					return Info{}, err
				}
				info.Orientation = exifOrientation(exif)
				skip -= int64(len(exif))
			}
			if err := src.copyTo(skip); err != nil {
				return Info{}, err
			}
		default:
			if err := src.copyTo(int64(size) + int64(size&1)); err != nil {
				return Info{}, err
			}
		}
	}
	if !hasImage {
		return Info{}, invalid("The WebP file has no image data.")
	}

	var riff [12]byte
	copy(riff[0:4], "RIFF")
	binary.LittleEndian.PutUint32(riff[4:8], uint32(4+len(vp8x)+body.Len()))
	copy(riff[8:12], "WEBP")
	for _, p := range [][]byte{riff[:], vp8x[:], body.Bytes()} {
		if _, err := out.Write(p); err != nil {
			return Info{}, err
		}
	}
	return info, nil
}

// copyWebPPayload copies a chunk's payload and, for an odd size, writes the
// RIFF pad byte as zero whatever the input held there.
func copyWebPPayload(src *source, out io.Writer, size uint32) error {
	if err := src.copyTo(int64(size), out); err != nil {
		return err
	}
	if size&1 == 0 {
		return nil
	}
	if _, err := src.readByte(); err != nil {
		return err
	}
	_, err := out.Write([]byte{0})
	return err
}

// vp8Size reads the dimensions from a VP8 key frame header: a 3-byte frame
// tag, the start code 9D 01 2A, then 14-bit width and height.
func vp8Size(b []byte) (int, int, bool) {
	if len(b) < 10 || b[0]&1 != 0 || b[3] != 0x9D || b[4] != 0x01 || b[5] != 0x2A {
		return 0, 0, false
	}
	w := int(binary.LittleEndian.Uint16(b[6:8]) & 0x3FFF)
	h := int(binary.LittleEndian.Uint16(b[8:10]) & 0x3FFF)
	return w, h, true
}

// vp8lSize reads the dimensions from a VP8L header: the signature 0x2F, then
// width-1 and height-1 in 14 bits each.
func vp8lSize(b []byte) (int, int, bool) {
	if len(b) < 5 || b[0] != 0x2F {
		return 0, 0, false
	}
	bits := binary.LittleEndian.Uint32(b[1:5])
	return int(bits&0x3FFF) + 1, int(bits>>14&0x3FFF) + 1, true
}
