package privacy

import (
	"archive/zip"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/fastimage/api/internal/storage"
)

// ExportFormatVersion is the version of the ZIP's layout, in its manifest:
// raised when a file is renamed or its shape changes, not when a table
// gains a column.
const ExportFormatVersion = 1

// MaxExportTTL is the longest an export stays downloadable.
const MaxExportTTL = 7 * 24 * time.Hour

const (
	// exportBatch is how many rows are read at once.
	exportBatch = 500
	// rowWeight is what one row counts for in the progress, in bytes of
	// images: about its size as JSON.
	rowWeight = 1024
	// zipBuffer gathers the ZIP's small writes before they cross the pipe
	// to the bucket.
	zipBuffer = 256 << 10
)

// ExportKey is where the ZIP of export request requestID of userID is
// kept: under the user's prefix, so that erasing the user erases it.
func ExportKey(userID, requestID uuid.UUID) string {
	return storage.UserPrefix(userID) + "exports/" + requestID.String() + ".zip"
}

// Manifest is manifest.json, the ZIP's table of contents: what each file
// holds and its SHA-256, so that the user (or a test) can check the ZIP.
type Manifest struct {
	Format        string          `json:"format"`
	FormatVersion int             `json:"format_version"`
	GeneratedAt   time.Time       `json:"generated_at"`
	RequestID     uuid.UUID       `json:"request_id"`
	UserID        uuid.UUID       `json:"user_id"`
	MissingImages []MissingImage  `json:"missing_images"`
	Files         []ManifestEntry `json:"files"`
}

// ManifestEntry describes one file of the ZIP.
type ManifestEntry struct {
	Name   string `json:"name"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
	// Rows counts the rows of each table in a JSON file.
	Rows map[string]int64 `json:"rows,omitempty"`
	// AssetID and ContentType describe an image.
	AssetID     *uuid.UUID `json:"asset_id,omitempty"`
	ContentType string     `json:"content_type,omitempty"`
}

// MissingImage is an image whose blob was gone when the export was built
// (its work was erased meanwhile).
type MissingImage struct {
	AssetID    uuid.UUID `json:"asset_id"`
	StorageKey string    `json:"storage_key"`
}

// Export builds the ZIP of an export request and records where it is: the
// Job for KindExport. The ZIP is streamed into the bucket as it is written
// (rows in batches, images one at a time), so memory stays flat however
// large the account; a failure stores nothing and the job is retried.
func (s *Service) Export(ctx context.Context, r *Request, progress func(percent int)) error {
	if s.cfg.Bucket == nil {
		return errors.New("privacy: exports need a storage bucket (Config.Bucket)")
	}
	now := s.clock.Now().UTC()
	total, err := s.exportSize(ctx, r.UserID)
	if err != nil {
		return err
	}
	meter := &progressMeter{total: total, report: progress, last: -1}
	meter.add(0)

	key := ExportKey(r.UserID, r.ID)
	pr, pw := io.Pipe()
	type putResult struct {
		info storage.ObjectInfo
		err  error
	}
	put := make(chan putResult, 1)
	go func() {
		info, err := s.cfg.Bucket.Put(ctx, key, pr, storage.PutOptions{ContentType: "application/zip"})
		// A Put that stops reading must not leave the writer blocked.
		pr.CloseWithError(errOr(err, errors.New("privacy: the bucket stopped reading the export")))
		put <- putResult{info, err}
	}()
	sum := sha256.New()
	out := &countingWriter{w: io.MultiWriter(pw, sum)}
	buf := bufio.NewWriterSize(out, zipBuffer)
	werr := s.writeExport(ctx, buf, r, now, meter)
	if werr == nil {
		werr = buf.Flush()
	}
	pw.CloseWithError(werr) // nil: the end of the ZIP
	res := <-put
	if werr != nil {
		return fmt.Errorf("write export: %w", werr)
	}
	if res.err != nil {
		return fmt.Errorf("store export: %w", res.err)
	}
	if res.info.Size != out.n {
		return fmt.Errorf("store export: the bucket kept %d bytes of %d", res.info.Size, out.n)
	}
	expires := now.Add(s.cfg.ExportTTL)
	digest := hex.EncodeToString(sum.Sum(nil))
	res2, err := s.db.NewRaw(`UPDATE privacy_requests SET result_key = ?, result_bytes = ?, result_sha256 = ?, result_expires_at = ?, updated_at = now()
		WHERE id = ? AND status = 'in_progress'`, key, out.n, digest, expires, r.ID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("record export: %w", err)
	}
	if n, _ := res2.RowsAffected(); n == 0 {
		return errors.New("privacy: the export request is no longer in progress")
	}
	r.ResultKey, r.ResultBytes, r.ResultSHA256, r.ResultExpiresAt = &key, &out.n, &digest, &expires
	return nil
}

func errOr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// exportSize is the work an export of userID is, in progress units: its
// rows (rowWeight each) and its images' bytes.
func (s *Service) exportSize(ctx context.Context, userID uuid.UUID) (int64, error) {
	var total int64
	for _, f := range exportFiles {
		for _, t := range f.Tables {
			var n int64
			if err := s.db.NewRaw("SELECT count(*) FROM "+t.From, userID).Scan(ctx, &n); err != nil {
				return 0, fmt.Errorf("count %s: %w", t.Name, err)
			}
			total += n * rowWeight
		}
	}
	var imageBytes int64
	if err := s.db.NewRaw("SELECT coalesce(sum(bytes), 0) FROM assets WHERE user_id = ?", userID).Scan(ctx, &imageBytes); err != nil {
		return 0, fmt.Errorf("sum image bytes: %w", err)
	}
	return total + imageBytes, nil
}

// writeExport writes the whole ZIP to w: the JSON files, the images, and
// the manifest last (it holds every other file's hash).
func (s *Service) writeExport(ctx context.Context, w io.Writer, r *Request, now time.Time, meter *progressMeter) error {
	zw := zip.NewWriter(w)
	m := Manifest{
		Format: "fastimage-data-export", FormatVersion: ExportFormatVersion, GeneratedAt: now,
		RequestID: r.ID, UserID: r.UserID, MissingImages: []MissingImage{},
	}
	for _, f := range exportFiles {
		e, err := s.writeJSONFile(ctx, zw, f, r.UserID, now, meter)
		if err != nil {
			return err
		}
		m.Files = append(m.Files, e)
	}
	// One manifest entry per image, for accounts of any size: they wait in
	// a temporary file rather than in memory.
	spool, err := os.CreateTemp("", "fastimage-export-*.json")
	if err != nil {
		return fmt.Errorf("spool manifest: %w", err)
	}
	defer func() {
		spool.Close()
		os.Remove(spool.Name())
	}()
	spooled := bufio.NewWriter(spool)
	missing, err := s.writeImages(ctx, zw, r.UserID, now, meter, spooled)
	if err != nil {
		return err
	}
	m.MissingImages = append(m.MissingImages, missing...)
	if err := spooled.Flush(); err != nil {
		return fmt.Errorf("spool manifest: %w", err)
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("spool manifest: %w", err)
	}
	if err := writeManifest(zw, m, now, spool); err != nil {
		return err
	}
	return zw.Close()
}

// writeManifest writes manifest.json: m, with the image entries of spool
// (each ",\n{…}") appended to its files.
func writeManifest(zw *zip.Writer, m Manifest, now time.Time, spool io.Reader) error {
	head, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	// head ends with the files array: "…\n ]\n}". The images go before its
	// closing bracket.
	body := strings.TrimSuffix(string(head), "\n}")
	body = strings.TrimSuffix(body, "\n ]")
	w, err := zw.CreateHeader(&zip.FileHeader{Name: "manifest.json", Method: zip.Deflate, Modified: now})
	if err != nil {
		return fmt.Errorf("add manifest: %w", err)
	}
	if _, err := io.WriteString(w, body); err != nil {
		return err
	}
	if _, err := io.Copy(w, spool); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	_, err = io.WriteString(w, "\n ]\n}\n")
	return err
}

// writeJSONFile writes one category's tables as {"table": [row, …], …},
// a row per line, reading each table in batches.
func (s *Service) writeJSONFile(ctx context.Context, zw *zip.Writer, f exportFile, userID uuid.UUID, now time.Time, meter *progressMeter) (ManifestEntry, error) {
	e := ManifestEntry{Name: f.Name, Rows: map[string]int64{}}
	zf, err := zw.CreateHeader(&zip.FileHeader{Name: f.Name, Method: zip.Deflate, Modified: now})
	if err != nil {
		return e, fmt.Errorf("add %s: %w", f.Name, err)
	}
	hw := newHashingWriter(zf)
	bw := bufio.NewWriter(hw)
	_, _ = bw.WriteString("{")
	for i, t := range f.Tables {
		if i > 0 {
			_, _ = bw.WriteString(",")
		}
		fmt.Fprintf(bw, "\n%q: [", t.Name)
		n, err := s.writeRows(ctx, bw, t, userID, meter)
		if err != nil {
			return e, err
		}
		if n > 0 {
			_, _ = bw.WriteString("\n")
		}
		_, _ = bw.WriteString("]")
		e.Rows[t.Name] = n
	}
	_, _ = bw.WriteString("\n}\n")
	if err := bw.Flush(); err != nil {
		return e, fmt.Errorf("write %s: %w", f.Name, err)
	}
	e.Bytes, e.SHA256 = hw.n, hw.sum()
	return e, nil
}

// writeRows writes t's rows of userID, comma-separated, one per line, and
// returns how many it wrote.
func (s *Service) writeRows(ctx context.Context, w *bufio.Writer, t exportTable, userID uuid.UUID, meter *progressMeter) (int64, error) {
	extra := "'{}'::jsonb"
	if t.Extra != "" {
		extra = t.Extra
	}
	cols := make([]string, len(t.Key))
	for i, k := range t.Key {
		cols[i] = "t." + k
	}
	keyList := strings.Join(cols, ", ")
	var keyText strings.Builder
	for _, c := range cols {
		keyText.WriteString(", " + c + "::text")
	}
	var (
		n    int64
		last []string
	)
	for {
		args := []any{userID, pgdialect.Array(append([]string{}, t.Omit...))}
		q := fmt.Sprintf("SELECT ((to_jsonb(t) - ?1::text[]) || %s)::text%s FROM %s", extra, keyText.String(), t.From)
		if last != nil {
			marks := make([]string, len(last))
			for i, v := range last {
				marks[i] = "?" + strconv.Itoa(len(args))
				args = append(args, v)
			}
			q += fmt.Sprintf(" AND (%s) > (%s)", keyList, strings.Join(marks, ", "))
		}
		q += fmt.Sprintf(" ORDER BY %s LIMIT %d", keyList, exportBatch)
		got, err := s.readBatch(ctx, q, args, len(t.Key), func(row string) error {
			if n > 0 {
				_, _ = w.WriteString(",")
			}
			_, _ = w.WriteString("\n")
			_, err := w.WriteString(row)
			n++
			meter.add(rowWeight)
			return err
		})
		if err != nil {
			return n, fmt.Errorf("export %s: %w", t.Name, err)
		}
		if got.rows < exportBatch {
			return n, nil
		}
		last = got.lastKey
	}
}

type batch struct {
	rows    int
	lastKey []string
}

// readBatch runs q and hands each row's JSON to emit; it returns how many
// rows there were and the key of the last.
func (s *Service) readBatch(ctx context.Context, q string, args []any, keys int, emit func(row string) error) (batch, error) {
	var b batch
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return b, err
	}
	defer rows.Close()
	dest := make([]any, 1+keys)
	var row string
	key := make([]string, keys)
	dest[0] = &row
	for i := range key {
		dest[1+i] = &key[i]
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return b, err
		}
		if err := emit(row); err != nil {
			return b, err
		}
		b.rows++
	}
	if err := rows.Err(); err != nil {
		return b, err
	}
	b.lastKey = key
	return b, nil
}

// exportAsset is what the export needs of an image's asset.
type exportAsset struct {
	ID          uuid.UUID `bun:"id"`
	StorageKey  string    `bun:"storage_key"`
	ContentType string    `bun:"content_type"`
}

// writeImages adds every image blob of userID's assets under images/ (at
// its key below the user's prefix), stored as they are (images do not
// compress), and spools their manifest entries, each as ",\n{…}". It
// returns the images whose blob was gone.
func (s *Service) writeImages(ctx context.Context, zw *zip.Writer, userID uuid.UUID, now time.Time, meter *progressMeter, spool io.Writer) ([]MissingImage, error) {
	var (
		missing []MissingImage
		after   uuid.UUID // the nil UUID sorts first
	)
	prefix := storage.UserPrefix(userID)
	for {
		var assets []exportAsset
		if err := s.db.NewRaw(`SELECT id, storage_key, content_type FROM assets WHERE user_id = ? AND id > ? ORDER BY id LIMIT ?`,
			userID, after, exportBatch).Scan(ctx, &assets); err != nil {
			return nil, fmt.Errorf("list images: %w", err)
		}
		for _, a := range assets {
			e, err := s.writeImage(ctx, zw, a, prefix, now, meter)
			if errors.Is(err, storage.ErrNotFound) {
				missing = append(missing, MissingImage{AssetID: a.ID, StorageKey: a.StorageKey})
				continue
			}
			if err != nil {
				return nil, err
			}
			line, err := json.Marshal(e)
			if err != nil {
				return nil, err
			}
			if _, err := fmt.Fprintf(spool, ",\n  %s", line); err != nil {
				return nil, fmt.Errorf("spool manifest: %w", err)
			}
		}
		if len(assets) < exportBatch {
			return missing, nil
		}
		after = assets[len(assets)-1].ID
	}
}

func (s *Service) writeImage(ctx context.Context, zw *zip.Writer, a exportAsset, prefix string, now time.Time, meter *progressMeter) (ManifestEntry, error) {
	rc, _, err := s.cfg.Bucket.Open(ctx, a.StorageKey, 0, -1)
	if err != nil {
		return ManifestEntry{}, fmt.Errorf("open image %s: %w", a.StorageKey, err)
	}
	defer rc.Close()
	name := "images/" + strings.TrimPrefix(a.StorageKey, prefix)
	zf, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store, Modified: now})
	if err != nil {
		return ManifestEntry{}, fmt.Errorf("add %s: %w", name, err)
	}
	hw := newHashingWriter(zf)
	if _, err := io.Copy(io.MultiWriter(hw, meterWriter{meter}), rc); err != nil {
		return ManifestEntry{}, fmt.Errorf("copy image %s: %w", a.StorageKey, err)
	}
	id := a.ID
	return ManifestEntry{Name: name, Bytes: hw.n, SHA256: hw.sum(), AssetID: &id, ContentType: a.ContentType}, nil
}

// hashingWriter passes writes on, hashing and counting them.
type hashingWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func newHashingWriter(w io.Writer) *hashingWriter { return &hashingWriter{w: w, h: sha256.New()} }

func (h *hashingWriter) Write(p []byte) (int, error) {
	n, err := h.w.Write(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}

func (h *hashingWriter) sum() string { return hex.EncodeToString(h.h.Sum(nil)) }

// countingWriter counts what passes through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// progressMeter turns units of work done into the job's percentage, told
// only when it changes (each report renews the job's lease in the
// database and may reach the user's feed).
type progressMeter struct {
	total, done int64
	last        int
	report      func(percent int)
}

func (p *progressMeter) add(n int64) {
	p.done += n
	pct := 99
	if p.total > 0 && p.done < p.total {
		pct = int(p.done * 99 / p.total)
	}
	if pct != p.last {
		p.last = pct
		p.report(pct)
	}
}

// meterWriter counts image bytes as they are copied.
type meterWriter struct{ p *progressMeter }

func (m meterWriter) Write(b []byte) (int, error) {
	m.p.add(int64(len(b)))
	return len(b), nil
}
