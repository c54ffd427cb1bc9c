package imaging

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"

	"github.com/fastimage/api/internal/apperr"
)

// JPEG markers this file treats specially (ITU T.81, table B.1).
const (
	markerSOF0  = 0xC0 // baseline
	markerSOF1  = 0xC1 // extended sequential, Huffman
	markerSOF2  = 0xC2 // progressive, Huffman
	markerDHT   = 0xC4
	markerJPG   = 0xC8
	markerDAC   = 0xCC
	markerRST0  = 0xD0
	markerRST7  = 0xD7
	markerSOI   = 0xD8
	markerEOI   = 0xD9
	markerSOS   = 0xDA
	markerAPP0  = 0xE0
	markerAPP1  = 0xE1
	markerAPP2  = 0xE2
	markerAPP14 = 0xEE
	markerAPP15 = 0xEF
	markerCOM   = 0xFE
	markerTEM   = 0x01
)

// stripJPEG copies a JPEG from src to out segment by segment and then the
// entropy-coded data of each scan through to EOI. What it keeps:
//   - APP0 "JFIF", with its embedded thumbnail removed (a thumbnail can show
//     what was cropped out of the main image); Go's decoder reads JFIF to
//     pick the colour transform, so a JFIF segment too short to hold a
//     thumbnail stays as it is. Other APP0 (JFXX thumbnails, AVI1) go.
//   - APP2 "ICC_PROFILE": the colour profile. Other APP2 (MPF, FlashPix) go.
//   - APP14 "Adobe": says whether the data is YCbCr, RGB or YCCK.
//   - every non-APP segment: tables, frame and scan headers, restart interval.
//
// What it drops: APP1 (EXIF, XMP, extended XMP), APP13 (IPTC/Photoshop),
// COM, every other APPn (vendor data, JPEG XT/JUMBF boxes), and anything
// after EOI (MPF secondary images, gain maps, vendor trailers).
//
// Segments are at most 64 KiB, so each is read whole into one reused buffer;
// scans are copied through the read buffer.
func stripJPEG(src *source, out io.Writer, maxPixels, maxDecodeBytes int64) (Info, error) {
	var soi [2]byte
	if err := src.readFull(soi[:]); err != nil {
		return Info{}, err
	}
	if soi != [2]byte{0xFF, markerSOI} {
		return Info{}, invalid("The JPEG file is corrupt.")
	}
	if _, err := out.Write(soi[:]); err != nil {
		return Info{}, err
	}

	var (
		info    Info
		seenSOF bool
		seenSOS bool
		adobe   = -1 // the Adobe segment's colour transform, once seen
		seg     = make([]byte, 0xFFFF)
		scratch = make([]byte, 4) // allocated once: slices passed to Write escape
	)
	marker, err := nextJPEGMarker(src)
	for {
		if err != nil {
			return Info{}, err
		}
		switch {
		case marker == markerEOI:
			if !seenSOS {
				return Info{}, invalid("The JPEG file has no image data.")
			}
			scratch[0], scratch[1] = 0xFF, markerEOI
			if _, err := out.Write(scratch[:2]); err != nil {
				return Info{}, err
			}
			return info, nil
		case marker == markerSOI || marker == 0x00:
			return Info{}, invalid("The JPEG file is corrupt.")
		case marker == markerTEM || marker >= markerRST0 && marker <= markerRST7:
			// Stand-alone markers with no meaning outside a scan.
			marker, err = nextJPEGMarker(src)
			continue
		}

		if err := src.readFull(scratch[:2]); err != nil {
			return Info{}, err
		}
		n := int(binary.BigEndian.Uint16(scratch[:2]))
		if n < 2 {
			return Info{}, invalid("The JPEG file is corrupt.")
		}
		payload := seg[:n-2]
		if err := src.readFull(payload); err != nil {
			return Info{}, err
		}

		keep := true
		switch {
		case isSOF(marker):
			if seenSOF {
				return Info{}, invalid("The JPEG file has more than one frame.")
			}
			seenSOF = true
			if marker != markerSOF0 && marker != markerSOF1 && marker != markerSOF2 {
				return Info{}, apperr.Errorf(UnsupportedMediaType,
					"This JPEG uses lossless or arithmetic coding, which we cannot read; save it as a standard JPEG.")
			}
			if len(payload) < 6 {
				return Info{}, invalid("The JPEG file is corrupt.")
			}
			info.Height = int(binary.BigEndian.Uint16(payload[1:3]))
			info.Width = int(binary.BigEndian.Uint16(payload[3:5]))
			if err := checkPixels(int64(info.Width), int64(info.Height), maxPixels); err != nil {
				return Info{}, err
			}
			frame, ok := parseJPEGFrame(marker, payload, adobe)
			if !ok {
				return Info{}, invalid("The JPEG file is corrupt.")
			}
			if err := checkDecodeBytes(frame.decodeBytes(), maxDecodeBytes); err != nil {
				return Info{}, err
			}
		case marker == markerSOS:
			if !seenSOF {
				return Info{}, invalid("The JPEG file has image data before its header.")
			}
			seenSOS = true
		case marker == markerAPP0:
			// Even a JFIF segment too short to be valid stays: Go's
			// decoder takes the bare "JFIF\0" as saying the data is YCbCr,
			// and without it reads components named R, G, B as RGB.
			keep = bytes.HasPrefix(payload, []byte("JFIF\x00"))
			if keep && len(payload) >= 14 {
				// Version, units and density stay; the thumbnail's size
				// becomes 0 × 0 and its pixels are left out.
				payload = payload[:14]
				payload[12], payload[13] = 0, 0
			}
		case marker == markerAPP1:
			keep = false
			if rest, ok := bytes.CutPrefix(payload, []byte("Exif\x00\x00")); ok && info.Orientation == 0 {
				info.Orientation = exifOrientation(rest)
				// A phone photo is often stored sideways with a tag that
				// says how to turn it. Only that tag stays, in an EXIF
				// block of its own, so that browsers still show it upright.
				if info.Orientation >= 2 && info.Orientation <= 8 {
					payload, keep = orientationOnlyExif(info.Orientation), true
				}
			}
		case marker == markerAPP2:
			keep = bytes.HasPrefix(payload, []byte("ICC_PROFILE\x00"))
		case marker == markerAPP14:
			keep = bytes.HasPrefix(payload, []byte("Adobe"))
			if keep && len(payload) >= 12 {
				adobe = int(payload[11])
			}
		case marker >= markerAPP0 && marker <= markerAPP15 || marker == markerCOM:
			keep = false
		}

		if keep {
			scratch[0], scratch[1] = 0xFF, marker
			binary.BigEndian.PutUint16(scratch[2:], uint16(len(payload)+2))
			if _, err := out.Write(scratch); err != nil {
				return Info{}, err
			}
			if _, err := out.Write(payload); err != nil {
				return Info{}, err
			}
		}
		if marker == markerSOS {
			marker, err = copyJPEGScan(src, out, scratch)
		} else {
			marker, err = nextJPEGMarker(src)
		}
	}
}

// isSOF reports whether m starts a frame: C0–CF except DHT, JPG and DAC,
// which share the range.
func isSOF(m byte) bool {
	return m >= 0xC0 && m <= 0xCF && m != markerDHT && m != markerJPG && m != markerDAC
}

// nextJPEGMarker reads up to and including the next marker between segments
// and returns its code. Fill bytes (0xFF) are allowed before a marker; other
// stray bytes, which some encoders leave between segments and decoders
// skip, are skipped and not copied.
func nextJPEGMarker(src *source) (byte, error) {
	b, err := src.readByte()
	for err == nil && b != 0xFF {
		b, err = src.readByte()
	}
	for err == nil && b == 0xFF {
		b, err = src.readByte()
	}
	return b, err
}

// copyJPEGScan copies entropy-coded data from src to out until a marker that
// ends the scan, and returns that marker's code, having consumed it. Inside a
// scan, 0xFF is followed by 0x00 (a stuffed data byte), RST0–RST7 (restart
// markers, part of the data), or more 0xFF (fill); anything else is a marker.
// scratch is a caller's buffer of at least two bytes.
func copyJPEGScan(src *source, out io.Writer, scratch []byte) (byte, error) {
	for {
		data, err := src.br.ReadSlice(0xFF)
		switch err {
		case nil:
			data = data[:len(data)-1] // the 0xFF is handled below
		case bufio.ErrBufferFull:
			if _, err := out.Write(data); err != nil {
				return 0, err
			}
			continue
		default:
			return 0, src.fail(err)
		}
		if _, err := out.Write(data); err != nil {
			return 0, err
		}
		b, err := src.readByte()
		for err == nil && b == 0xFF {
			b, err = src.readByte()
		}
		if err != nil {
			return 0, err
		}
		if b != 0x00 && (b < markerRST0 || b > markerRST7) {
			return b, nil
		}
		scratch[0], scratch[1] = 0xFF, b
		if _, err := out.Write(scratch[:2]); err != nil {
			return 0, err
		}
	}
}
