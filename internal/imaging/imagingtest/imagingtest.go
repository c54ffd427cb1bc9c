// Package imagingtest makes image files for tests: real PNG, JPEG and WebP
// files, and the hostile ones uploads must refuse (a decompression bomb, a
// photo carrying its GPS position).
package imagingtest

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
)

// Tiny WebP files made with cwebp 1.x from a 3×2 gradient, since Go has no
// WebP encoder: `cwebp -lossless -exact`, `cwebp -q 80`, and `cwebp -q 80` of
// the same image with one translucent pixel (which gives VP8X + ALPH + VP8).
const (
	WebPLossless3x2 = "\x52\x49\x46\x46\x2e\x00\x00\x00\x57\x45\x42\x50\x56\x50\x38\x4c" +
		"\x22\x00\x00\x00\x2f\x02\x40\x00\x00\x2f\x30\x78\x02\x81\x24\xc4" +
		"\x51\x47\x1c\xe4\xf9\x0f\x16\x22\x8c\x01\x81\x00\x65\xac\x38\xe0" +
		"\x94\x88\xfe\xc7\xf2\x02"
	WebPLossy3x2 = "\x52\x49\x46\x46\x52\x00\x00\x00\x57\x45\x42\x50\x56\x50\x38\x20" +
		"\x46\x00\x00\x00\xf0\x01\x00\x9d\x01\x2a\x03\x00\x02\x00\x01\x40" +
		"\x26\x25\xa8\x02\x74\xba\x00\x03\x08\xf7\x8a\x00\x00\xfe\xd2\xa7" +
		"\x28\x57\xeb\xfb\x5f\xa5\x97\xff\x5c\xe1\x86\x7c\xff\xc4\xd9\xff" +
		"\x2e\xfa\x26\xd2\xf6\x14\xff\x8f\xe3\x81\xf7\xff\xe4\xdf\xf2\xdf" +
		"\x4a\xe8\x31\xf7\xff\xe4\xdf\xd5\x40\x00"
	WebPLossyAlpha3x2 = "\x52\x49\x46\x46\x70\x00\x00\x00\x57\x45\x42\x50\x56\x50\x38\x58" +
		"\x0a\x00\x00\x00\x10\x00\x00\x00\x02\x00\x00\x01\x00\x00\x41\x4c" +
		"\x50\x48\x07\x00\x00\x00\x00\x64\xff\xff\xff\xff\xff\x00\x56\x50" +
		"\x38\x20\x42\x00\x00\x00\xf0\x01\x00\x9d\x01\x2a\x03\x00\x02\x00" +
		"\x01\x40\x26\x25\xa8\x02\x74\xba\x00\x03\x09\x06\xfb\x80\x00\xfe" +
		"\xde\x35\xd5\x5c\x42\x38\xb9\xff\xc7\xff\xd4\x19\xff\x90\x67\xfe" +
		"\x41\x9f\x9f\xbf\xfb\xe6\xf6\x2f\xbf\xff\x26\xff\x96\xfa\x57\x41" +
		"\x8f\xbf\xff\x26\xfe\xaa\x00\x00"
)

// Gradient returns an opaque w×h image.
func Gradient(w, h int) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			m.SetNRGBA(x, y, color.NRGBA{R: uint8(x * 255 / max(w-1, 1)), G: uint8(y * 255 / max(h-1, 1)), B: 128, A: 255})
		}
	}
	return m
}

// PNG returns a w×h PNG file.
func PNG(w, h int) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, Gradient(w, h)); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// JPEG returns a w×h JPEG file.
func JPEG(w, h int) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, Gradient(w, h), &jpeg.Options{Quality: 90}); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// PNGChunk encodes one PNG chunk with its CRC.
func PNGChunk(typ string, data []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	b = append(b, typ...)
	b = append(b, data...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[4:]))
}

// BombPNG is a 70-byte PNG that declares w×h RGBA pixels. Its IDAT is not
// zlib data, so decoding it would fail as corrupt, not as too large.
func BombPNG(w, h uint32) []byte {
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 6, 0, 0, 0)
	b := []byte("\x89PNG\r\n\x1a\n")
	b = append(b, PNGChunk("IHDR", ihdr)...)
	b = append(b, PNGChunk("IDAT", []byte("not zlib"))...)
	return append(b, PNGChunk("IEND", nil)...)
}

// JPEGSegment encodes one JPEG marker segment.
func JPEGSegment(marker byte, payload []byte) []byte {
	b := []byte{0xFF, marker}
	b = binary.BigEndian.AppendUint16(b, uint16(len(payload)+2))
	return append(b, payload...)
}

// ExifTIFF is a minimal EXIF TIFF block with an Orientation tag and a GPS
// IFD holding a latitude (48°51'29.04" N: Paris).
func ExifTIFF(order binary.AppendByteOrder, orientation uint16) []byte {
	var b []byte
	if order == binary.AppendByteOrder(binary.LittleEndian) {
		b = []byte("II*\x00")
	} else {
		b = []byte("MM\x00*")
	}
	entry := func(b []byte, tag, typ uint16, count, value uint32) []byte {
		b = order.AppendUint16(b, tag)
		b = order.AppendUint16(b, typ)
		b = order.AppendUint32(b, count)
		return order.AppendUint32(b, value)
	}
	const gpsIFD = 8 + 2 + 2*12 + 4
	const gpsData = gpsIFD + 2 + 2*12 + 4
	b = order.AppendUint32(b, 8)
	b = order.AppendUint16(b, 2)
	b = order.AppendUint16(b, 0x0112) // Orientation, SHORT, inline
	b = order.AppendUint16(b, 3)
	b = order.AppendUint32(b, 1)
	b = order.AppendUint16(b, orientation)
	b = order.AppendUint16(b, 0)
	b = entry(b, 0x8825, 4, 1, gpsIFD) // GPSInfo, LONG offset
	b = order.AppendUint32(b, 0)
	b = order.AppendUint16(b, 2)
	b = entry(b, 0x0001, 2, 2, 0)       // GPSLatitudeRef: filled in below
	b = entry(b, 0x0002, 5, 3, gpsData) // GPSLatitude, 3 RATIONALs
	copy(b[gpsIFD+2+8:], "N\x00")
	b = order.AppendUint32(b, 0)
	for _, r := range [][2]uint32{{48, 1}, {51, 1}, {2904, 100}} {
		b = order.AppendUint32(b, r[0])
		b = order.AppendUint32(b, r[1])
	}
	return b
}

// JPEGWithGPS returns a w×h JPEG whose APP1 EXIF segment carries a GPS
// position, as a phone photo does.
func JPEGWithGPS(w, h int) []byte { return JPEGWithExif(w, h, 1) }

// JPEGWithExif is JPEGWithGPS with an EXIF orientation (1–8): a camera held
// sideways stores the pixels as they came and a tag that says how to turn
// them.
func JPEGWithExif(w, h, orientation int) []byte {
	j := JPEG(w, h)
	app1 := JPEGSegment(0xE1, append([]byte("Exif\x00\x00"), ExifTIFF(binary.BigEndian, uint16(orientation))...))
	out := append([]byte(nil), j[:2]...)
	out = append(out, app1...)
	return append(out, j[2:]...)
}

// NoisyPNG returns a w×h PNG of random pixels, which does not compress: about
// 4 bytes a pixel, for files of a chosen size.
func NoisyPNG(w, h int) []byte {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	r := rand.New(rand.NewPCG(uint64(w), uint64(h)))
	for i := range m.Pix {
		m.Pix[i] = byte(r.Uint32())
	}
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// DeepPNG returns a real w×h PNG of black pixels at 16 bits a channel with
// alpha: every decoder must allocate 8 bytes a pixel for it (320 MB at 40
// megapixels), yet the file is a few hundred KB, since its rows are all
// zero. The rows are compressed once and repeated, so making the file costs
// neither the pixels nor the time to compress them.
func DeepPNG(w, h int) []byte {
	row := make([]byte, 1+8*w) // the filter byte (none), then the pixels
	var buf bytes.Buffer
	zw, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		panic(err)
	}
	block := func() []byte {
		buf.Reset()
		if _, err := zw.Write(row); err != nil {
			panic(err)
		}
		if err := zw.Flush(); err != nil {
			panic(err)
		}
		return bytes.Clone(buf.Bytes())
	}
	// From the second row on, the window holds only zeros, so each row
	// compresses to the same bytes; the third confirms it.
	first, next, third := block(), block(), block()
	if !bytes.Equal(next, third) || h < 2 {
		panic("imagingtest: DeepPNG rows do not compress alike")
	}
	buf.Reset()
	if err := zw.Close(); err != nil {
		panic(err)
	}
	end := bytes.Clone(buf.Bytes())

	idat := []byte{0x78, 0xDA} // zlib, best compression
	idat = append(idat, first...)
	for range h - 1 {
		idat = append(idat, next...)
	}
	idat = append(idat, end...)
	// Adler-32 of n zero bytes: a stays 1 and b adds it n times.
	n := uint64(h) * uint64(len(row))
	idat = binary.BigEndian.AppendUint32(idat, uint32(n%65521)<<16|1)

	ihdr := binary.BigEndian.AppendUint32(nil, uint32(w))
	ihdr = binary.BigEndian.AppendUint32(ihdr, uint32(h))
	ihdr = append(ihdr, 16, 6, 0, 0, 0)
	b := []byte("\x89PNG\r\n\x1a\n")
	b = append(b, PNGChunk("IHDR", ihdr)...)
	b = append(b, PNGChunk("IDAT", idat)...)
	return append(b, PNGChunk("IEND", nil)...)
}
