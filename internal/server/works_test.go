package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	_ "image/jpeg"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/imaging/imagingtest"
	"github.com/fastimage/api/internal/storage"
	"github.com/fastimage/api/internal/work"
)

const uploadMutation = `mutation($file: Upload!, $title: String) { uploadImage(input: {file: $file, title: $title}) {
	work { id kind title status images { id role width height bytes contentType sha256 url thumbnailUrl(size: 256) big: thumbnailUrl(size: 1024) urlExpiresAt } } } }`

type uploaded struct {
	UploadImage struct{ Work workView }
}

type workView struct {
	ID, Kind, Title, Status string
	Images                  []struct {
		ID, Role, ContentType, SHA256, URL, ThumbnailURL, Big string
		Width, Height                                         int
		Bytes                                                 int64
		URLExpiresAt                                          time.Time
	}
}

// upload sends a file through the GraphQL multipart request protocol.
func (c *client) upload(filename string, data []byte, title string) gqlResponse {
	c.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	ops, _ := json.Marshal(map[string]any{"query": uploadMutation, "variables": map[string]any{"file": nil, "title": title}})
	mw.WriteField("operations", string(ops))
	mw.WriteField("map", `{"0": ["variables.file"]}`)
	fw, _ := mw.CreateFormFile("0", filename)
	fw.Write(data)
	mw.Close()
	req, _ := http.NewRequest("POST", c.s.URL+"/graphql", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+c.token)
	_, out := do(c.t, req)
	return out
}

func (c *client) mustUpload(filename string, data []byte, title string) workView {
	c.t.Helper()
	out := c.upload(filename, data, title)
	if len(out.Errors) > 0 {
		c.t.Fatalf("upload %s: %+v", filename, out.Errors)
	}
	var u uploaded
	json.Unmarshal(out.Data, &u)
	return u.UploadImage.Work
}

func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func worksCfg() *config.Serve {
	cfg := testConfig()
	cfg.MaxUploadBytes = 2 << 20
	return cfg
}

func TestUploadImages(t *testing.T) {
	t.Parallel()
	s := start(t, worksCfg())
	me, _ := mustSignUp(t, s, "uploader@example.com")
	for _, tc := range []struct {
		name, file  string
		data        []byte
		contentType string
		w, h        int
	}{
		{"png", "a.png", imagingtest.PNG(640, 480), "image/png", 640, 480},
		{"jpeg", "b.jpg", imagingtest.JPEG(300, 1200), "image/jpeg", 300, 1200},
		{"webp", "c.webp", []byte(imagingtest.WebPLossy3x2), "image/webp", 3, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := me.mustUpload(tc.file, tc.data, "My "+tc.name)
			if w.Kind != "UPLOAD" || w.Status != "SUCCEEDED" || w.Title != "My "+tc.name || len(w.Images) != 1 {
				t.Fatalf("work %+v", w)
			}
			img := w.Images[0]
			if img.Role != "SOURCE" || img.ContentType != tc.contentType || img.Width != tc.w || img.Height != tc.h || img.Bytes <= 0 || len(img.SHA256) != 64 {
				t.Errorf("image %+v", img)
			}
			if until := time.Until(img.URLExpiresAt); until < time.Hour || until > 2*time.Hour {
				t.Errorf("urlExpiresAt in %v, want about an hour", until)
			}
			resp, body := get(t, img.URL)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tc.contentType || int64(len(body)) != img.Bytes {
				t.Errorf("GET url: %d %s, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
			}
			resp, _ = get(t, img.ThumbnailURL)
			if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "image/") {
				t.Errorf("GET thumbnailUrl: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
		})
	}
	var st struct {
		Viewer struct {
			Storage struct{ UsedBytes, QuotaBytes int64 }
		}
	}
	me.must(`{ viewer { storage { usedBytes quotaBytes } } }`, nil, &st)
	if st.Viewer.Storage.UsedBytes <= 0 || st.Viewer.Storage.QuotaBytes != 50<<20 {
		t.Errorf("storage = %+v", st.Viewer.Storage)
	}
}

func TestRefusedUploadsLeaveNothing(t *testing.T) {
	t.Parallel()
	s := start(t, worksCfg())
	me, id := mustSignUp(t, s, "refused@example.com")
	truncated := imagingtest.PNG(64, 64)
	truncated = truncated[:len(truncated)-20]
	big := imagingtest.NoisyPNG(800, 800) // about 2.5 MB, over the 2 MiB cap
	for _, tc := range []struct {
		name, file string
		data       []byte
		code       string
	}{
		{"text renamed .png", "notes.png", []byte("just some text, not an image at all"), "UNSUPPORTED_MEDIA_TYPE"},
		{"truncated png", "cut.png", truncated, "INVALID_IMAGE"},
		{"over the size cap", "big.png", big, "PAYLOAD_TOO_LARGE"},
		{"decompression bomb", "bomb.png", imagingtest.BombPNG(50_000, 50_000), "IMAGE_TOO_LARGE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := me.upload(tc.file, tc.data, "")
			if out.code() != tc.code {
				t.Fatalf("got %q (%+v), want %s", out.code(), out.Errors, tc.code)
			}
		})
	}
	var works, assets int
	if err := s.db.NewRaw("SELECT (SELECT count(*) FROM works), (SELECT count(*) FROM assets)").Scan(context.Background(), &works, &assets); err != nil {
		t.Fatal(err)
	}
	blobs, err := s.bucket.List(context.Background(), storage.UserPrefix(uuidOfGlobal(t, id)))
	if err != nil {
		t.Fatal(err)
	}
	if works != 0 || assets != 0 || len(blobs) != 0 {
		t.Fatalf("refused uploads left %d works, %d assets, %d blobs", works, assets, len(blobs))
	}
}

func TestGPSPositionIsStripped(t *testing.T) {
	t.Parallel()
	s := start(t, worksCfg())
	me, _ := mustSignUp(t, s, "photo@example.com")
	photo := imagingtest.JPEGWithGPS(120, 80)
	if !bytes.Contains(photo, []byte("Exif")) {
		t.Fatal("the fixture has no EXIF to strip")
	}
	w := me.mustUpload("holiday.jpg", photo, "Paris")
	_, stored := get(t, w.Images[0].URL)
	if bytes.Contains(stored, []byte("Exif")) || len(stored) == 0 {
		t.Fatalf("the stored copy still carries EXIF (%d bytes)", len(stored))
	}
	if w.Images[0].Width != 120 || w.Images[0].Height != 80 {
		t.Errorf("dimensions %dx%d", w.Images[0].Width, w.Images[0].Height)
	}
}

func TestWorksListRunsAFixedNumberOfQueries(t *testing.T) {
	t.Parallel()
	s := start(t, worksCfg())
	me, id := mustSignUp(t, s, "many@example.com")
	user := uuidOfGlobal(t, id)
	for i := range 30 {
		if _, err := s.gallery.Upload(context.Background(), actor.Actor{UserID: user}, workUpload(fmt.Sprintf("work %02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	q := `query($n: Int!) { viewer { works(first: $n) { totalCount edges { node { id title sourceWork { id }
		images { role width url thumbnailUrl(size: 256) big: thumbnailUrl(size: 1024) } } } } } }`
	for _, n := range []int{1, 10, 30} {
		s.queries.n.Store(0)
		var out struct {
			Viewer struct {
				Works struct {
					TotalCount int
					Edges      []struct {
						Node struct {
							Title  string
							Images []struct{ URL string }
						}
					}
				}
			}
		}
		me.must(q, map[string]any{"n": n}, &out)
		t.Logf("works(first: %d): %d SQL queries", n, s.queries.n.Load())
		if got := s.queries.n.Load(); got > 3 {
			t.Errorf("works(first: %d) ran %d SQL queries, want at most 3", n, got)
		}
		if len(out.Viewer.Works.Edges) != n || out.Viewer.Works.TotalCount != 30 || out.Viewer.Works.Edges[0].Node.Title != "work 29" {
			t.Errorf("first %d: %d edges, total %d", n, len(out.Viewer.Works.Edges), out.Viewer.Works.TotalCount)
		}
		for _, e := range out.Viewer.Works.Edges {
			if len(e.Node.Images) != 1 || e.Node.Images[0].URL == "" {
				t.Fatalf("work without its image: %+v", e.Node)
			}
		}
	}
	// Images are loaded only when asked for.
	s.queries.n.Store(0)
	me.must(`{ viewer { works(first: 30) { edges { node { title } } } } }`, nil, nil)
	if got := s.queries.n.Load(); got != 2 {
		t.Errorf("works without images ran %d SQL queries, want 2 (page and count)", got)
	}

	// Filtering and paging.
	var page struct {
		Viewer struct {
			Works struct {
				TotalCount int
				PageInfo   struct {
					HasNextPage bool
					EndCursor   string
				}
				Edges []struct{ Node struct{ Title string } }
			}
		}
	}
	me.must(`{ viewer { works(first: 5, filter: {query: "WORK 1"}) { totalCount pageInfo { hasNextPage endCursor } edges { node { title } } } } }`, nil, &page)
	if page.Viewer.Works.TotalCount != 10 || !page.Viewer.Works.PageInfo.HasNextPage || page.Viewer.Works.Edges[0].Node.Title != "work 19" {
		t.Errorf("filtered page: %+v", page.Viewer.Works)
	}
	me.must(`query($a: String) { viewer { works(first: 5, after: $a, filter: {query: "work 1", kind: UPLOAD}) { totalCount pageInfo { hasNextPage endCursor } edges { node { title } } } } }`,
		map[string]any{"a": page.Viewer.Works.PageInfo.EndCursor}, &page)
	if len(page.Viewer.Works.Edges) != 5 || page.Viewer.Works.PageInfo.HasNextPage || page.Viewer.Works.Edges[4].Node.Title != "work 10" {
		t.Errorf("second page: %+v", page.Viewer.Works)
	}
}

func workUpload(title string) work.UploadInput {
	return work.UploadInput{File: bytes.NewReader(imagingtest.PNG(32, 24)), Title: title}
}

func TestSignedURLs(t *testing.T) {
	t.Parallel()
	s := start(t, worksCfg())
	me, _ := mustSignUp(t, s, "urls@example.com")
	w := me.mustUpload("a.png", imagingtest.PNG(40, 30), "")
	url := w.Images[0].URL

	// Tampered: one character of the signature changed.
	i := strings.Index(url, "X-Signature=") + len("X-Signature=") + 3
	swap := byte('A')
	if url[i] == 'A' {
		swap = 'B'
	}
	tampered := url[:i] + string(swap) + url[i+1:]
	if resp, _ := get(t, tampered); resp.StatusCode != 403 {
		t.Errorf("tampered URL: %d, want 403", resp.StatusCode)
	}
	// Another object under the same signature.
	if resp, _ := get(t, strings.Replace(url, ".png", "-256.png", 1)); resp.StatusCode != 403 {
		t.Errorf("URL pointed at another key: %d, want 403", resp.StatusCode)
	}
	// Expired.
	var key string
	if err := s.db.NewRaw("SELECT storage_key FROM assets WHERE role = 'source'").Scan(context.Background(), &key); err != nil {
		t.Fatal(err)
	}
	short, err := s.bucket.SignedURL(context.Background(), key, storage.SignOptions{Method: "GET", Expires: s.clock.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, short); resp.StatusCode != 200 {
		t.Fatalf("fresh URL: %d", resp.StatusCode)
	}
	s.clock.Advance(59 * time.Second)
	if resp, _ := get(t, short); resp.StatusCode != 200 {
		t.Fatalf("URL a second before it expires: got %d, want 200", resp.StatusCode)
	}
	s.clock.Advance(time.Second)
	if resp, body := get(t, short); resp.StatusCode != 403 || !strings.Contains(string(body), "expired") {
		t.Errorf("expired URL: got %d %.80q, want 403, expired", resp.StatusCode, body)
	}
	// Range requests and caching headers.
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Range", "bytes=0-7")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 206 || string(body) != "\x89PNG\r\n\x1a\n" || resp.Header.Get("ETag") == "" {
		t.Errorf("range request: %d %q ETag %q", resp.StatusCode, body, resp.Header.Get("ETag"))
	}
}

// User B can never reach user A's works or images, through any field that
// takes an id.
func TestWorksAreInvisibleToOthers(t *testing.T) {
	t.Parallel()
	s := start(t, worksCfg())
	alice, _ := mustSignUp(t, s, "alice@example.com")
	bob, _ := mustSignUp(t, s, "bob@example.com")
	w := alice.mustUpload("a.png", imagingtest.PNG(20, 20), "private")
	var up struct{ CreateUpload struct{ UploadID string } }
	alice.must(`mutation { createUpload(input: {filename: "x.png", contentType: "image/png", bytes: 100}) { uploadId } }`, nil, &up)

	ids := map[string]any{"id": w.ID}
	bob.fails("NOT_FOUND", `query($id: ID!) { work(id: $id) { id images { url } } }`, ids)
	var node struct{ Node *struct{ ID string } }
	bob.must(`query($id: ID!) { node(id: $id) { id ... on Work { images { url } } } }`, ids, &node)
	var nodes struct{ Nodes []*struct{ ID string } }
	bob.must(`query($id: ID!) { nodes(ids: [$id]) { id } }`, ids, &nodes)
	if node.Node != nil || nodes.Nodes[0] != nil {
		t.Errorf("bob sees alice's work through node/nodes")
	}
	bob.fails("NOT_FOUND", `mutation($id: ID!) { renameWork(input: {workId: $id, title: "mine"}) { work { id } } }`, ids)
	bob.fails("NOT_FOUND", `mutation($id: ID!) { deleteWorks(input: {workIds: [$id]}) { deletedWorkIds } }`, ids)
	bob.fails("NOT_FOUND", `mutation($id: ID!) { restoreWorks(input: {workIds: [$id]}) { works { id } } }`, ids)
	bob.fails("NOT_FOUND", `mutation($id: ID!) { completeUpload(input: {uploadId: $id}) { work { id } } }`, map[string]any{"id": up.CreateUpload.UploadID})
	var list struct {
		Viewer struct{ Works struct{ TotalCount int } }
	}
	bob.must(`{ viewer { works { totalCount } } }`, nil, &list)
	if list.Viewer.Works.TotalCount != 0 {
		t.Errorf("bob's list shows %d works", list.Viewer.Works.TotalCount)
	}
	alice.must(`query($id: ID!) { work(id: $id) { id } }`, ids, nil)
}

func TestDeleteRestorePurge(t *testing.T) {
	t.Parallel()
	s := start(t, worksCfg())
	me, id := mustSignUp(t, s, "bin@example.com")
	user := uuidOfGlobal(t, id)
	a := me.mustUpload("a.png", imagingtest.PNG(30, 30), "keep")
	b := me.mustUpload("b.png", imagingtest.PNG(30, 30), "bin")
	count := func() int {
		var l struct {
			Viewer struct{ Works struct{ TotalCount int } }
		}
		me.must(`{ viewer { works { totalCount } } }`, nil, &l)
		return l.Viewer.Works.TotalCount
	}
	del := `mutation($ids: [ID!]!) { deleteWorks(input: {workIds: $ids}) { deletedWorkIds restorableUntil } }`
	me.fails("NOT_FOUND", del, map[string]any{"ids": []string{b.ID, "V29yazowMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDA"}})
	if count() != 2 {
		t.Fatal("a refused batch deleted something")
	}
	me.must(del, map[string]any{"ids": []string{b.ID}}, nil)
	if count() != 1 {
		t.Fatal("the deleted work is still listed")
	}
	me.fails("NOT_FOUND", `query($id: ID!) { work(id: $id) { id } }`, map[string]any{"id": b.ID})
	// The bin lists it, with its images and until when it can come back.
	var bin struct {
		Viewer struct {
			Works struct {
				TotalCount int
				Edges      []struct {
					Node struct {
						ID, Title                  string
						DeletedAt, RestorableUntil *time.Time
						Images                     []struct{ ThumbnailURL string }
					}
				}
			}
		}
	}
	me.must(`{ viewer { works(filter: {inBin: true}) { totalCount edges { node { id title deletedAt restorableUntil images { thumbnailUrl } } } } } }`, nil, &bin)
	if got := bin.Viewer.Works; got.TotalCount != 1 || len(got.Edges) != 1 || got.Edges[0].Node.ID != b.ID {
		t.Fatalf("bin = %+v, want only %s", got, b.ID)
	}
	if n := bin.Viewer.Works.Edges[0].Node; n.DeletedAt == nil || n.RestorableUntil == nil || !n.RestorableUntil.After(*n.DeletedAt) || len(n.Images) == 0 || n.Images[0].ThumbnailURL == "" {
		t.Errorf("binned work = %+v, want deletedAt, a later restorableUntil and its thumbnails", n)
	}
	var kept struct {
		Viewer struct {
			Works struct {
				Edges []struct {
					Node struct {
						DeletedAt, RestorableUntil *time.Time
					}
				}
			}
		}
	}
	me.must(`{ viewer { works(filter: {inBin: false}) { edges { node { deletedAt restorableUntil } } } } }`, nil, &kept)
	if e := kept.Viewer.Works.Edges; len(e) != 1 || e[0].Node.DeletedAt != nil || e[0].Node.RestorableUntil != nil {
		t.Errorf("works outside the bin = %+v, want one without deletedAt and restorableUntil", e)
	}
	me.must(`mutation($ids: [ID!]!) { restoreWorks(input: {workIds: $ids}) { works { id title } } }`, map[string]any{"ids": []string{b.ID}}, nil)
	if count() != 2 {
		t.Fatal("the restored work is not back")
	}

	var before struct {
		Viewer struct{ Storage struct{ UsedBytes int64 } }
	}
	me.must(`{ viewer { storage { usedBytes } } }`, nil, &before)
	me.must(del, map[string]any{"ids": []string{b.ID}}, nil)
	if _, err := s.db.ExecContext(context.Background(), "UPDATE works SET deleted_at = now() - interval '8 days' WHERE deleted_at IS NOT NULL"); err != nil {
		t.Fatal(err)
	}
	me.fails("NOT_FOUND", `mutation($ids: [ID!]!) { restoreWorks(input: {workIds: $ids}) { works { id } } }`, map[string]any{"ids": []string{b.ID}})
	var expired struct {
		Viewer struct{ Works struct{ TotalCount int } }
	}
	if me.must(`{ viewer { works(filter: {inBin: true}) { totalCount } } }`, nil, &expired); expired.Viewer.Works.TotalCount != 0 {
		t.Errorf("the bin lists %d works past their restore date, want 0", expired.Viewer.Works.TotalCount)
	}
	n, err := s.gallery.Purge(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("purged %d (%v), want 1", n, err)
	}
	blobs, err := s.bucket.List(context.Background(), storage.UserPrefix(user)+"works/"+uuidOfGlobal(t, b.ID).String()+"/")
	if err != nil {
		t.Fatal(err)
	}
	var rows int
	if err := s.db.NewRaw("SELECT count(*) FROM assets a JOIN works w ON w.id = a.work_id WHERE w.title = 'bin'").Scan(context.Background(), &rows); err != nil {
		t.Fatal(err)
	}
	if len(blobs) != 0 || rows != 0 {
		t.Fatalf("after the purge: %d blobs, %d asset rows left", len(blobs), rows)
	}
	var after struct {
		Viewer struct{ Storage struct{ UsedBytes int64 } }
	}
	me.must(`{ viewer { storage { usedBytes } } }`, nil, &after)
	if after.Viewer.Storage.UsedBytes >= before.Viewer.Storage.UsedBytes || after.Viewer.Storage.UsedBytes <= 0 {
		t.Errorf("usage %d before, %d after the purge", before.Viewer.Storage.UsedBytes, after.Viewer.Storage.UsedBytes)
	}
	if others, err := s.bucket.List(context.Background(), storage.UserPrefix(user)); err != nil || len(others) == 0 {
		t.Errorf("the purge took the kept work's blobs too: %d left (%v)", len(others), err)
	}
	_ = a
}

func TestQuota(t *testing.T) {
	t.Parallel()
	cfg := worksCfg()
	cfg.Works.QuotaBytes = 200_000 // room for one photo with its previews, not two
	s := start(t, cfg)
	me, id := mustSignUp(t, s, "quota@example.com")
	photo := imagingtest.JPEG(1400, 1400)
	me.mustUpload("1.jpg", photo, "")
	if out := me.upload("2.jpg", photo, ""); out.code() != "QUOTA_EXCEEDED" {
		t.Fatalf("an upload past the quota: %q (%+v), want QUOTA_EXCEEDED", out.code(), out.Errors)
	}
	var st struct {
		Viewer struct {
			Storage struct{ UsedBytes, QuotaBytes int64 }
		}
	}
	me.must(`{ viewer { storage { usedBytes quotaBytes } } }`, nil, &st)
	if st.Viewer.Storage.UsedBytes > st.Viewer.Storage.QuotaBytes || st.Viewer.Storage.QuotaBytes != 200_000 {
		t.Fatalf("usage %d, quota %d", st.Viewer.Storage.UsedBytes, st.Viewer.Storage.QuotaBytes)
	}
	var works int
	if err := s.db.NewRaw("SELECT count(*) FROM works").Scan(context.Background(), &works); err != nil {
		t.Fatal(err)
	}
	blobs, err := s.bucket.List(context.Background(), storage.UserPrefix(uuidOfGlobal(t, id)))
	if err != nil {
		t.Fatal(err)
	}
	if works != 1 || len(blobs) != 3 {
		t.Errorf("after the refusal: %d works and %d blobs, want 1 and 3 (an image and two previews)", works, len(blobs))
	}
}

func TestDirectUpload(t *testing.T) {
	t.Parallel()
	s := start(t, worksCfg())
	me, id := mustSignUp(t, s, "direct@example.com")
	data := imagingtest.JPEGWithGPS(200, 100)
	var up struct {
		CreateUpload struct{ UploadID, UploadURL, ContentType string }
	}
	me.fails("UNSUPPORTED_MEDIA_TYPE", `mutation { createUpload(input: {filename: "x.gif", contentType: "image/gif", bytes: 10}) { uploadId } }`, nil)
	me.fails("PAYLOAD_TOO_LARGE", `mutation { createUpload(input: {filename: "x.png", contentType: "image/png", bytes: 999999999}) { uploadId } }`, nil)
	me.must(`mutation($n: Bytes!) { createUpload(input: {filename: "big.jpg", contentType: "image/jpeg", bytes: $n, title: "direct"}) { uploadId uploadUrl contentType } }`,
		map[string]any{"n": len(data)}, &up)
	complete := `mutation($id: ID!) { completeUpload(input: {uploadId: $id}) { work { id title images { width height url } } } }`
	me.fails("VALIDATION", complete, map[string]any{"id": up.CreateUpload.UploadID})

	put := func(contentType string) int {
		req, _ := http.NewRequest("PUT", up.CreateUpload.UploadURL, bytes.NewReader(data))
		req.Header.Set("Content-Type", contentType)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := put("image/png"); code != 403 {
		t.Errorf("PUT with another content type: %d, want 403", code)
	}
	if code := put("image/jpeg"); code/100 != 2 {
		t.Fatalf("PUT: %d", code)
	}
	var done struct {
		CompleteUpload struct {
			Work struct {
				ID, Title string
				Images    []struct {
					Width, Height int
					URL           string
				}
			}
		}
	}
	me.must(complete, map[string]any{"id": up.CreateUpload.UploadID}, &done)
	w := done.CompleteUpload.Work
	if w.Title != "direct" || len(w.Images) != 1 || w.Images[0].Width != 200 {
		t.Fatalf("completed work %+v", w)
	}
	_, stored := get(t, w.Images[0].URL)
	if bytes.Contains(stored, []byte("Exif")) {
		t.Error("a direct upload kept its EXIF")
	}
	var again struct {
		CompleteUpload struct{ Work struct{ ID string } }
	}
	me.must(complete, map[string]any{"id": up.CreateUpload.UploadID}, &again)
	if again.CompleteUpload.Work.ID != w.ID {
		t.Errorf("completing twice made another work")
	}

	// Completion voided the URL: another PUT stores nothing.
	if code := put("image/jpeg"); code != 403 {
		t.Errorf("PUT after completeUpload: %d, want 403", code)
	}
	staged, err := s.bucket.List(context.Background(), storage.UserPrefix(uuidOfGlobal(t, id))+"uploads/")
	if err != nil {
		t.Fatal(err)
	}
	if len(staged) != 0 {
		t.Errorf("after a PUT to a completed upload: %d staged files, want none", len(staged))
	}
}

// A phone photo stored sideways keeps the one EXIF tag that turns it upright,
// and its size and previews are the upright ones.
func TestSidewaysPhotoStaysUpright(t *testing.T) {
	t.Parallel()
	s := start(t, worksCfg())
	me, _ := mustSignUp(t, s, "phone@example.com")
	photo := imagingtest.JPEGWithExif(120, 80, 6) // needs a quarter turn clockwise
	w := me.mustUpload("phone.jpg", photo, "")
	img := w.Images[0]
	if img.Width != 80 || img.Height != 120 {
		t.Errorf("size %dx%d, want the upright 80x120", img.Width, img.Height)
	}
	_, stored := get(t, img.URL)
	i := bytes.Index(stored, []byte("Exif\x00\x00"))
	if i < 4 {
		t.Fatal("the stored photo lost its orientation")
	}
	// The EXIF segment left holds one tag: no room for a GPS position.
	if segLen := int(stored[i-2])<<8 | int(stored[i-1]); segLen > 40 {
		t.Errorf("the kept EXIF segment is %d bytes; only the orientation should stay", segLen)
	}
	_, thumb := get(t, img.ThumbnailURL)
	cfg, _, err := image.DecodeConfig(bytes.NewReader(thumb))
	if err != nil || cfg.Width != 80 || cfg.Height != 120 {
		t.Errorf("preview %dx%d (%v), want upright 80x120", cfg.Width, cfg.Height, err)
	}
}
