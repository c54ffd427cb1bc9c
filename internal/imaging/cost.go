package imaging

import (
	"bytes"
	"encoding/binary"
)

// DefaultMaxDecodeBytes is the default of Limits.MaxDecodeBytes: 256 MiB,
// which takes every 8-bit image at DefaultMaxPixels (160 MB as RGBA) and a
// baseline JPEG of any size up to it, but not a 16-bit RGBA PNG of 40
// megapixels (320 MB).
const DefaultMaxDecodeBytes = 256 << 20

// The decode costs below are upper bounds of what the decoders this package
// calls (image/png, image/jpeg, golang.org/x/image/webp) allocate for one
// image, worked out from its header alone: the pixels at the type and bit
// depth the decoder returns, plus the second copy some of them make on the
// way. Small buffers (rows, Huffman tables) are left out.

// pngDecodeBytes is what image/png allocates for a width × height PNG of the
// given bit depth, colour type and interlace method (IHDR bytes 8, 9, 12).
// A palette image stays one byte a pixel; every other type becomes 4 bytes a
// pixel at 8 bits or less (a tRNS chunk, which comes after IHDR, turns grey
// and truecolour into NRGBA) and 8 at 16 bits. An interlaced image holds the
// largest Adam7 pass (half the rows) beside the whole image while merging.
func pngDecodeBytes(width, height int64, depth, colorType, interlace byte) int64 {
	bpp := int64(4)
	switch {
	case colorType == 3:
		bpp = 1
	case depth == 16:
		bpp = 8
	}
	n := width * height * bpp
	if interlace != 0 {
		n += width * ((height + 1) / 2) * bpp
	}
	return n
}

// jpegFrame is what decoding cost depends on in a JPEG's frame header (SOF)
// and the Adobe segment before it.
type jpegFrame struct {
	progressive   bool
	width, height int64
	// sampling holds each component's horizontal and vertical sampling
	// factors.
	sampling [][2]int64
	// rgb is set when the decoder will convert to RGBA: an Adobe transform
	// of 0, or components named R, G and B.
	rgb bool
}

// parseJPEGFrame reads a SOF segment's payload (after its length). adobe is
// the transform byte of an earlier APP14 "Adobe" segment, or -1.
func parseJPEGFrame(marker byte, payload []byte, adobe int) (jpegFrame, bool) {
	if len(payload) < 6 {
		return jpegFrame{}, false
	}
	f := jpegFrame{
		progressive: marker == markerSOF2,
		height:      int64(binary.BigEndian.Uint16(payload[1:3])),
		width:       int64(binary.BigEndian.Uint16(payload[3:5])),
	}
	n := int(payload[5])
	if n == 0 || len(payload) < 6+3*n {
		return jpegFrame{}, false
	}
	ids := make([]byte, 0, n)
	for i := range n {
		c := payload[6+3*i : 9+3*i]
		h, v := int64(c[1]>>4), int64(c[1]&0x0F)
		if h < 1 || h > 4 || v < 1 || v > 4 {
			return jpegFrame{}, false
		}
		f.sampling = append(f.sampling, [2]int64{h, v})
		ids = append(ids, c[0])
	}
	f.rgb = adobe == 0 || adobe < 0 && string(ids) == "RGB"
	return f, true
}

// decodeBytes is what image/jpeg allocates for f: each component's samples
// over the frame padded to whole MCUs (one byte each); for a progressive
// JPEG, also every component's coefficients, kept until the last scan (64
// int32 for each 8 × 8 block: 4 bytes a sample); and the RGBA or CMYK copy
// it converts RGB and four-component images to.
func (f jpegFrame) decodeBytes() int64 {
	var hmax, vmax int64 = 1, 1
	for _, s := range f.sampling {
		hmax, vmax = max(hmax, s[0]), max(vmax, s[1])
	}
	mcuW, mcuH := 8*hmax, 8*vmax
	pw := (f.width + mcuW - 1) / mcuW * mcuW
	ph := (f.height + mcuH - 1) / mcuH * mcuH
	var samples int64
	for _, s := range f.sampling {
		samples += pw * s[0] / hmax * (ph * s[1] / vmax)
	}
	n := samples
	if f.progressive {
		n += 4 * samples
	}
	if len(f.sampling) == 4 || len(f.sampling) == 3 && f.rgb {
		n += 4 * pw * ph
	}
	return n
}

// scanJPEGFrame walks the segments at the start of a JPEG file to its frame
// header. It reports false if b ends first or is not a JPEG.
func scanJPEGFrame(b []byte) (jpegFrame, bool) {
	if len(b) < 2 || b[0] != 0xFF || b[1] != markerSOI {
		return jpegFrame{}, false
	}
	adobe := -1
	i := 2
	for {
		for i < len(b) && b[i] != 0xFF {
			i++ // stray bytes between segments, which decoders skip
		}
		for i < len(b) && b[i] == 0xFF {
			i++
		}
		if i >= len(b) {
			return jpegFrame{}, false
		}
		marker := b[i]
		i++
		if marker == markerTEM || marker >= markerRST0 && marker <= markerRST7 {
			continue
		}
		if i+2 > len(b) {
			return jpegFrame{}, false
		}
		n := int(binary.BigEndian.Uint16(b[i : i+2]))
		if n < 2 || i+n > len(b) {
			return jpegFrame{}, false
		}
		payload := b[i+2 : i+n]
		i += n
		switch {
		case isSOF(marker):
			return parseJPEGFrame(marker, payload, adobe)
		case marker == markerAPP14 && len(payload) >= 12 && bytes.HasPrefix(payload, []byte("Adobe")):
			adobe = int(payload[11])
		case marker == markerSOS || marker == markerEOI:
			return jpegFrame{}, false
		}
	}
}

// webpDecodeBytes is what golang.org/x/image/webp allocates for a
// width × height WebP whose first chunk is fourCC. A lossy image is YCbCr
// 4:2:0 over whole macroblocks (1.5 bytes a pixel); a lossless one is NRGBA,
// plus a second copy if it uses a colour-indexing transform (8 bytes a
// pixel). An extended file (VP8X) says only later whether it is lossy with a
// lossless-coded alpha plane, the worst case: YCbCr, alpha decoded as NRGBA
// with its own transform copy, and the alpha plane (10.5 bytes a pixel).
func webpDecodeBytes(width, height int64, fourCC string) int64 {
	switch fourCC {
	case "VP8 ":
		mw, mh := (width+15)/16*16, (height+15)/16*16
		return mw * mh * 3 / 2
	case "VP8L":
		return 8 * width * height
	default:
		mw, mh := (width+15)/16*16, (height+15)/16*16
		return mw*mh*3/2 + 9*width*height
	}
}

// headerDecodeBytes works out the decode cost of an image of type ct from
// the first bytes of its file (up to the frame header, for a JPEG). It
// reports false if they do not hold the header.
func headerDecodeBytes(ct string, b []byte) (int64, bool) {
	switch ct {
	case PNG:
		if len(b) < 29 {
			return 0, false
		}
		w, h := int64(binary.BigEndian.Uint32(b[16:20])), int64(binary.BigEndian.Uint32(b[20:24]))
		return pngDecodeBytes(w, h, b[24], b[25], b[28]), true
	case JPEG:
		f, ok := scanJPEGFrame(b)
		if !ok {
			return 0, false
		}
		return f.decodeBytes(), true
	case WebP:
		if len(b) < 30 {
			return 0, false
		}
		fourCC := string(b[12:16])
		switch fourCC {
		case "VP8 ":
			w, h, ok := vp8Size(b[20:30])
			return webpDecodeBytes(int64(w), int64(h), fourCC), ok
		case "VP8L":
			w, h, ok := vp8lSize(b[20:25])
			return webpDecodeBytes(int64(w), int64(h), fourCC), ok
		case "VP8X":
			w := 1 + (int64(b[24]) | int64(b[25])<<8 | int64(b[26])<<16)
			h := 1 + (int64(b[27]) | int64(b[28])<<8 | int64(b[29])<<16)
			return webpDecodeBytes(w, h, fourCC), true
		}
	}
	return 0, false
}
