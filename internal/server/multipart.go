package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/graphql"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/logging"
)

// multipartTransport serves uploads as the GraphQL multipart request
// specification (github.com/jaydenseric/graphql-multipart-request-spec)
// describes: an "operations" part, a "map" part, then the files. Every
// problem is answered with a code and the status our JSON transport would
// give (gqlgen's MultipartForm answers 422, or 200 for an oversize body,
// without one, and panics on a map path that does not fit the variables).
// Each file is capped at maxFile bytes, the operations and map parts at
// maxFields; a file stays in memory up to maxMemory bytes and goes to a
// temporary file, removed when the request ends, beyond.
type multipartTransport struct {
	maxFile   int64
	maxFields int64
	maxMemory int64
	log       *slog.Logger
}

var _ graphql.Transport = multipartTransport{}

func (multipartTransport) Supports(r *http.Request) bool {
	return r.Header.Get("Upgrade") == "" && r.Method == http.MethodPost && isMultipart(r)
}

// requestProblem is why a request cannot run, as the client will see it.
type requestProblem struct {
	status  int
	code    apperr.Code
	message string
}

func badRequest(format string, args ...any) *requestProblem {
	return &requestProblem{http.StatusBadRequest, apperr.BadRequest, fmt.Sprintf(format, args...)}
}

func (t multipartTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	media, ok := negotiate(r.Header.Get("Accept"))
	if !ok {
		writeGraphQLError(w, mediaJSON, http.StatusNotAcceptable, apperr.BadRequest,
			"This endpoint answers with application/graphql-response+json or application/json; send an Accept header that allows one.")
		return
	}
	start := graphql.Now()
	var temps []*os.File
	defer func() {
		for _, f := range temps {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	params, problem := t.read(r, &temps)
	if problem != nil {
		if problem.code == apperr.Internal {
			id := logging.RequestID(r.Context())
			t.log.ErrorContext(r.Context(), "multipart upload", "err", problem.message)
			problem.message = "Something went wrong on our side. Please try again; if it keeps happening, contact support and quote request id " + id + "."
		}
		writeGraphQLError(w, media, problem.status, problem.code, problem.message)
		return
	}
	if msg := checkQuery(params); msg != "" {
		writeGraphQLError(w, media, http.StatusBadRequest, apperr.BadRequest, msg)
		return
	}
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	execute(w, r, exec, media, params)
}

const multipartHelp = "see the GraphQL multipart request specification (github.com/jaydenseric/graphql-multipart-request-spec)"

// read reads the operations, the map and the files; temporary files it
// creates are appended to temps for the caller to remove.
func (t multipartTransport) read(r *http.Request, temps *[]*os.File) (*graphql.RawParams, *requestProblem) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, badRequest("The multipart/form-data Content-Type has no boundary; send the boundary your body uses, %s.", multipartHelp)
	}
	part, err := mr.NextPart()
	if err != nil {
		return nil, readProblem(err)
	}
	if part.FormName() != "operations" {
		return nil, badRequest(`The first part of a multipart request must be "operations", the GraphQL request as JSON; %s.`, multipartHelp)
	}
	body, problem := t.readField(part)
	if problem != nil {
		return nil, problem
	}
	params := &graphql.RawParams{}
	if msg := decodeParams(body, `"operations" part`, params); msg != "" {
		return nil, badRequest("%s", msg)
	}

	if part, err = mr.NextPart(); err != nil {
		return nil, readProblem(err)
	}
	if part.FormName() != "map" {
		return nil, badRequest(`The second part of a multipart request must be "map", which names the variable each file fills; %s.`, multipartHelp)
	}
	if body, problem = t.readField(part); problem != nil {
		return nil, problem
	}
	var uploads map[string][]string
	if err := json.Unmarshal(body, &uploads); err != nil {
		return nil, badRequest(`The "map" part is not a JSON object of file names to variable paths, such as {"0": ["variables.file"]}: %s.`, jsonProblem(err))
	}

	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, readProblem(err)
		}
		key := part.FormName()
		paths := uploads[key]
		if len(paths) == 0 {
			return nil, badRequest("The multipart part %q is not named in the \"map\" part; map every file to the variable it fills.", key)
		}
		delete(uploads, key)
		file, problem := t.readFile(part, temps)
		if problem != nil {
			return nil, problem
		}
		for _, path := range paths {
			up := graphql.Upload{Filename: part.FileName(), ContentType: part.Header.Get("Content-Type"), Size: file.size}
			if file.temp != nil {
				f, err := os.Open(file.temp.Name())
				if err != nil {
					return nil, &requestProblem{http.StatusInternalServerError, apperr.Internal, fmt.Sprintf("open upload %s: %v", file.temp.Name(), err)}
				}
				*temps = append(*temps, f)
				up.File = f
			} else {
				up.File = bytes.NewReader(file.data)
			}
			if !setUpload(params.Variables, path, up) {
				return nil, badRequest(`The "map" part's path %q names no variable of the operation; use paths such as "variables.file" or "variables.files.0", with null in their place in "operations".`, path)
			}
		}
	}
	for key := range uploads {
		return nil, badRequest("The \"map\" part names the file %q, but no part carries it.", key)
	}
	return params, nil
}

// readField reads a non-file part, at most maxFields bytes.
func (t multipartTransport) readField(part *multipart.Part) ([]byte, *requestProblem) {
	body, err := io.ReadAll(io.LimitReader(part, t.maxFields+1))
	if err != nil {
		return nil, readProblem(err)
	}
	if int64(len(body)) > t.maxFields {
		return nil, &requestProblem{http.StatusRequestEntityTooLarge, apperr.PayloadTooLarge,
			fmt.Sprintf("The %q part is larger than the %d-byte limit; send a smaller query or fewer variables.", part.FormName(), t.maxFields)}
	}
	return body, nil
}

// uploadedFile is a file part's content: in memory, or in a temporary file.
type uploadedFile struct {
	data []byte
	temp *os.File
	size int64
}

func (t multipartTransport) readFile(part *multipart.Part, temps *[]*os.File) (uploadedFile, *requestProblem) {
	tooLarge := &requestProblem{http.StatusRequestEntityTooLarge, apperr.PayloadTooLarge,
		fmt.Sprintf("The file %q is larger than the %d-byte upload limit; send a smaller image.", part.FileName(), t.maxFile)}
	head, err := io.ReadAll(io.LimitReader(part, min(t.maxMemory, t.maxFile)+1))
	if err != nil {
		return uploadedFile{}, readProblem(err)
	}
	n := int64(len(head))
	if n > t.maxFile {
		return uploadedFile{}, tooLarge
	}
	if n <= t.maxMemory {
		return uploadedFile{data: head, size: n}, nil
	}
	f, err := os.CreateTemp("", "fastimage-upload-")
	if err != nil {
		return uploadedFile{}, &requestProblem{http.StatusInternalServerError, apperr.Internal, fmt.Sprintf("create a temporary file: %v", err)}
	}
	*temps = append(*temps, f)
	if _, err := f.Write(head); err != nil {
		return uploadedFile{}, &requestProblem{http.StatusInternalServerError, apperr.Internal, fmt.Sprintf("write %s: %v", f.Name(), err)}
	}
	rest, err := io.Copy(f, io.LimitReader(part, t.maxFile-n+1))
	if err != nil {
		var pathErr *os.PathError
		if errors.As(err, &pathErr) {
			return uploadedFile{}, &requestProblem{http.StatusInternalServerError, apperr.Internal, fmt.Sprintf("write %s: %v", f.Name(), err)}
		}
		return uploadedFile{}, readProblem(err)
	}
	if n+rest > t.maxFile {
		return uploadedFile{}, tooLarge
	}
	return uploadedFile{temp: f, size: n + rest}, nil
}

// readProblem describes an error reading the body: over the body cap, or
// cut short or malformed.
func readProblem(err error) *requestProblem {
	if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
		return &requestProblem{http.StatusRequestEntityTooLarge, apperr.PayloadTooLarge,
			fmt.Sprintf("The request body is larger than the %d-byte limit; send a smaller file.", tooLarge.Limit)}
	}
	return badRequest("The multipart body is malformed or ends early; send it again, %s.", multipartHelp)
}

// setUpload puts up where path ("variables.a.0.b") points in vars, and
// reports whether that place exists.
func setUpload(vars map[string]any, path string, up graphql.Upload) bool {
	rest, ok := strings.CutPrefix(path, "variables.")
	if !ok || vars == nil {
		return false
	}
	var cur any = vars
	segs := strings.Split(rest, ".")
	for i, seg := range segs {
		last := i == len(segs)-1
		switch c := cur.(type) {
		case map[string]any:
			if last {
				c[seg] = up
				return true
			}
			cur = c[seg]
		case []any:
			idx, err := strconv.Atoi(seg)
			if err != nil || idx < 0 || idx >= len(c) {
				return false
			}
			if last {
				c[idx] = up
				return true
			}
			cur = c[idx]
		default:
			return false
		}
	}
	return false
}
