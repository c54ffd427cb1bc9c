package imaging

import (
	"encoding/binary"
	"hash/crc32"
	"io"
)

// maxEXIFRead is how much of an EXIF block is read to find the orientation
// tag. IFD0 sits at the start of the block, and the tag's value is inline.
const maxEXIFRead = 64 << 10

// keepPNGChunk reports whether a chunk of type typ survives cleaning.
//
// Critical chunks (upper-case first letter: IHDR, PLTE, IDAT, IEND) are always
// kept. Of the ancillary ones, only those that change how the pixels look or
// move are kept:
//   - colour: tRNS, gAMA, cHRM, sRGB, iCCP, sBIT, and the HDR chunks cICP,
//     mDCV and cLLI (also in their draft spellings mDCv, cLLi);
//   - animation (APNG): acTL, fcTL, fdAT, without which an animated PNG would
//     silently become its first frame;
//   - pHYs, the pixel aspect ratio and density: 9 bytes that say nothing
//     about a person but do change how some viewers and printers size or
//     stretch the image.
//
// Everything else is dropped: eXIf, tEXt, zTXt, iTXt, tIME, bKGD, hIST,
// sPLT, and every private or unknown chunk (which may carry anything).
func keepPNGChunk(typ [4]byte) bool {
	if typ[0]&0x20 == 0 {
		return true
	}
	switch string(typ[:]) {
	case "tRNS", "gAMA", "cHRM", "sRGB", "iCCP", "sBIT",
		"cICP", "mDCV", "cLLI", "mDCv", "cLLi",
		"acTL", "fcTL", "fdAT",
		"pHYs":
		return true
	}
	return false
}

// stripPNG copies a PNG from src to out chunk by chunk, dropping the chunks
// keepPNGChunk rejects. Every chunk's CRC is checked, including dropped ones,
// and the stream must reach IEND. Bytes after IEND are not read, so anything
// appended to the image (a ZIP in a polyglot file) is left behind.
func stripPNG(src *source, out io.Writer, maxPixels, maxDecodeBytes int64) (Info, error) {
	// The signature and IHDR are read whole and checked before anything is
	// written, so a bomb leaves w untouched.
	var head [8 + 8 + 13 + 4]byte
	if err := src.readFull(head[:]); err != nil {
		return Info{}, err
	}
	if string(head[8:16]) != "\x00\x00\x00\x0dIHDR" {
		return Info{}, invalid("The PNG file does not start with an IHDR chunk.")
	}
	if crc32.ChecksumIEEE(head[12:29]) != binary.BigEndian.Uint32(head[29:33]) {
		return Info{}, invalid("The PNG file is damaged: a checksum does not match.")
	}
	width, height := binary.BigEndian.Uint32(head[16:20]), binary.BigEndian.Uint32(head[20:24])
	if width > 1<<31-1 || height > 1<<31-1 {
		return Info{}, invalid("The PNG file declares impossible dimensions.")
	}
	if err := checkPixels(int64(width), int64(height), maxPixels); err != nil {
		return Info{}, err
	}
	if err := checkDecodeBytes(pngDecodeBytes(int64(width), int64(height), head[24], head[25], head[28]), maxDecodeBytes); err != nil {
		return Info{}, err
	}
	if _, err := out.Write(head[:]); err != nil {
		return Info{}, err
	}

	info := Info{Width: int(width), Height: int(height)}
	crc := crc32.NewIEEE()
	seenIDAT := false
	// Allocated once: slices passed to Write escape to the heap.
	hdr, sum := make([]byte, 8), make([]byte, 4)
	for {
		if err := src.readFull(hdr); err != nil {
			return Info{}, err
		}
		length := binary.BigEndian.Uint32(hdr[0:4])
		typ := [4]byte(hdr[4:8])
		if length > 1<<31-1 || !validPNGChunkType(typ) {
			return Info{}, invalid("The PNG file is corrupt.")
		}
		crc.Reset()
		crc.Write(hdr[4:8])
		keep := keepPNGChunk(typ)
		switch {
		case keep:
			if _, err := out.Write(hdr); err != nil {
				return Info{}, err
			}
			if err := src.copyTo(int64(length), out, crc); err != nil {
				return Info{}, err
			}
		case string(typ[:]) == "eXIf" && info.Orientation == 0:
			exif := make([]byte, min(length, maxEXIFRead))
			if err := src.readFull(exif); err != nil {
				return Info{}, err
			}
			crc.Write(exif)
			if err := src.copyTo(int64(length)-int64(len(exif)), crc); err != nil {
				return Info{}, err
			}
			info.Orientation = exifOrientation(exif)
		default:
			if err := src.copyTo(int64(length), crc); err != nil {
				return Info{}, err
			}
		}
		if err := src.readFull(sum); err != nil {
			return Info{}, err
		}
		if binary.BigEndian.Uint32(sum) != crc.Sum32() {
			return Info{}, invalid("The PNG file is damaged: a checksum does not match.")
		}
		if keep {
			if _, err := out.Write(sum); err != nil {
				return Info{}, err
			}
		}
		switch string(typ[:]) {
		case "IHDR":
			return Info{}, invalid("The PNG file has two IHDR chunks.")
		case "IDAT":
			seenIDAT = true
		case "IEND":
			if !seenIDAT {
				return Info{}, invalid("The PNG file has no image data.")
			}
			return info, nil
		}
	}
}

// validPNGChunkType reports whether typ is four ASCII letters, as the PNG
// specification requires; anything else means we lost sync with the stream.
func validPNGChunkType(typ [4]byte) bool {
	for _, c := range typ {
		if (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}
