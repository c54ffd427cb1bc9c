package imaging

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"
)

func TestProcessStripsWebPMetadata(t *testing.T) {
	vp8l := riffChunk("VP8L", []byte(webpLossless3x2)[20:])
	iccp := riffChunk("ICCP", []byte("fake profile"))
	const iccFlag = 1 << 5
	exif := exifTIFF(binary.LittleEndian, 3)
	if len(exif)%2 == 0 {
		exif = append(exif, 0) // an odd size, to exercise the pad byte
	}
	in := webpFile(
		vp8xChunk(iccFlag|vp8xEXIF|vp8xXMP, 3, 2),
		iccp,
		vp8l,
		riffChunk("EXIF", exif),
		riffChunk("XMP ", []byte("<x:xmpmeta>Jane Doe</x:xmpmeta>")),
		riffChunk("ZZZZ", []byte("unknown")),
	)

	info, out := mustProcess(t, in, testLimits())

	want := webpFile(vp8xChunk(iccFlag, 3, 2), iccp, vp8l)
	if !bytes.Equal(out, want) {
		t.Errorf("chunks: got %v, want %v", webpChunkTypes(t, out), webpChunkTypes(t, want))
	}
	if got, want := webpChunkTypes(t, out), []string{"VP8X", "ICCP", "VP8L"}; !slices.Equal(got, want) {
		t.Errorf("chunks: got %v, want %v", got, want)
	}
	if got := out[20] & (vp8xEXIF | vp8xXMP); got != 0 {
		t.Errorf("VP8X metadata flags: got %#x, want 0", got)
	}
	if got, want := binary.LittleEndian.Uint32(out[4:8]), uint32(len(out)-8); got != want {
		t.Errorf("RIFF size: got %v, want %v", got, want)
	}
	if info.Orientation != 3 {
		t.Errorf("Orientation: got %v, want %v", info.Orientation, 3)
	}
	if b := mustDecode(t, WebP, out).Bounds(); b.Dx() != 3 || b.Dy() != 2 {
		t.Errorf("decoded size: got %v, want 3×2", b.Size())
	}
}
