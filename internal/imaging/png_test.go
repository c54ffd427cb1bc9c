package imaging

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"
)

func TestProcessStripsPNGMetadata(t *testing.T) {
	base := encodePNG(t, gradient(40, 30, true))
	gAMA := pngChunk("gAMA", binary.BigEndian.AppendUint32(nil, 45455))
	pHYs := pngChunk("pHYs", []byte{0, 0, 0x0B, 0x13, 0, 0, 0x0B, 0x13, 1})
	in := withPNGChunks(base,
		pngChunk("tEXt", []byte("Author\x00Jane Doe, 12 Main St")),
		pngChunk("eXIf", exifTIFF(binary.BigEndian, 6)),
		gAMA,
		pngChunk("zTXt", []byte("Comment\x00\x00x\x9c\x03\x00\x00\x00\x00\x01")),
		pngChunk("iTXt", []byte("XML:com.adobe.xmp\x00\x00\x00\x00\x00<x:xmpmeta/>")),
		pngChunk("tIME", []byte{0x07, 0xE8, 1, 2, 3, 4, 5}),
		pHYs,
		pngChunk("bKGD", []byte{0, 0, 0, 0, 0, 0}),
		pngChunk("prVt", []byte("private vendor data")),
	)

	info, out := mustProcess(t, in, testLimits())

	if want := withPNGChunks(base, gAMA, pHYs); !bytes.Equal(out, want) {
		t.Errorf("chunks: got %v, want %v", pngChunkTypes(t, out), pngChunkTypes(t, want))
	}
	for _, s := range []string{"Jane Doe", "xmpmeta", "MM\x00*"} {
		if bytes.Contains(out, []byte(s)) {
			t.Errorf("output contains %q: got it, want it gone", s)
		}
	}
	if info.Orientation != 6 {
		t.Errorf("Orientation: got %v, want %v", info.Orientation, 6)
	}
	if b := mustDecode(t, PNG, out).Bounds(); b.Dx() != 40 || b.Dy() != 30 {
		t.Errorf("decoded size: got %v, want 40×30", b.Size())
	}
}

func TestProcessKeepsAPNGChunks(t *testing.T) {
	base := encodePNG(t, gradient(8, 8, false))
	acTL := pngChunk("acTL", []byte{0, 0, 0, 1, 0, 0, 0, 0})
	in := withPNGChunks(base, acTL)
	_, out := mustProcess(t, in, testLimits())
	if !bytes.Equal(out, in) {
		t.Errorf("chunks: got %v, want %v", pngChunkTypes(t, out), pngChunkTypes(t, in))
	}
}

func TestKeepPNGChunk(t *testing.T) {
	kept := []string{"IHDR", "PLTE", "IDAT", "IEND", "tRNS", "gAMA", "cHRM", "sRGB", "iCCP", "sBIT", "cICP", "mDCV", "cLLI", "pHYs", "acTL", "fcTL", "fdAT"}
	dropped := []string{"eXIf", "tEXt", "zTXt", "iTXt", "tIME", "bKGD", "hIST", "sPLT", "prVt", "iDOT"}
	for _, typ := range append(slices.Clone(kept), dropped...) {
		t.Run(typ, func(t *testing.T) {
			want := slices.Contains(kept, typ)
			if got := keepPNGChunk([4]byte([]byte(typ))); got != want {
				t.Errorf("keepPNGChunk(%q): got %v, want %v", typ, got, want)
			}
		})
	}
}
