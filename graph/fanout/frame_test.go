package fanout

import (
	"encoding/json"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

func TestAppendResponseWritesWhatEncodingJSONWrites(t *testing.T) {
	yes := true
	tests := []struct {
		name string
		resp *graphql.Response
	}{
		{"data", &graphql.Response{Data: []byte(`{"generationEvents":{"seq":2,"kind":"PROGRESS","fraction":0.5}}`)}},
		{"no data", &graphql.Response{}},
		{"errors", &graphql.Response{Errors: gqlerror.List{{Message: "Not found.", Extensions: map[string]any{"code": "NOT_FOUND"}}}}},
		{"extensions", &graphql.Response{Data: []byte(`{"a":1}`), Extensions: map[string]any{"cost": map[string]any{"requested": 3, "remaining": 19997}}}},
		{"everything", &graphql.Response{Data: []byte(`{"a":null}`), Errors: gqlerror.List{{Message: "<b>&"}}, Extensions: map[string]any{"x": "y"}}},
		{"html in data", &graphql.Response{Data: []byte("{\"prompt\":\"<cat> & dog \u2028\u2029\"}")}},
		{"extensions that write themselves", &graphql.Response{Data: []byte(`{"a":1}`), Extensions: map[string]any{"z": 1, "cost": selfWritten(`{"requestedQueryCost":3}`), "a<b": "c"}}},
		{"deferred", &graphql.Response{Data: []byte(`{"a":1}`), Label: "l", Path: ast.Path{ast.PathName("a")}, HasNext: &yes}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, err := json.Marshal(tc.resp)
			if err != nil {
				t.Fatal(err)
			}
			got, err := AppendResponse([]byte("prefix"), tc.resp)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "prefix"+string(want) {
				t.Errorf("got %s, want prefix%s", got, want)
			}
		})
	}
}

// selfWritten is an extension value that writes its own JSON both ways.
type selfWritten string

func (s selfWritten) MarshalJSON() ([]byte, error)          { return []byte(s), nil }
func (s selfWritten) AppendJSON(dst []byte) ([]byte, error) { return append(dst, s...), nil }

func TestAppendResponseMessageWritesWhatEncodingJSONWrites(t *testing.T) {
	type message struct {
		ID      string          `json:"id,omitempty"`
		Type    string          `json:"type"`
		Payload json.RawMessage `json:"payload,omitempty"`
	}
	resp := &graphql.Response{Data: []byte(`{"generationEvents":{"seq":2,"note":"<b>"}}`), Extensions: map[string]any{"cost": selfWritten(`{"requestedQueryCost":3}`)}}
	payload, err := json.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", "1", `a "quoted" <id>\ é ` + "\x01"} {
		want, err := json.Marshal(message{ID: id, Type: "next", Payload: payload})
		if err != nil {
			t.Fatal(err)
		}
		got, err := AppendResponseMessage([]byte("x"), id, "next", resp, Extension{})
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "x"+string(want) {
			t.Errorf("id %q: got %s, want x%s", id, got, want)
		}
		// The same extension given apart from the response, as the
		// transport gives an operation's cost, writes the same bytes.
		bare := *resp
		bare.Extensions = nil
		got, err = AppendResponseMessage([]byte("x"), id, "next", &bare, Extension{Name: "cost", Value: resp.Extensions["cost"].(JSONAppender)})
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "x"+string(want) {
			t.Errorf("id %q, extension apart: got %s, want x%s", id, got, want)
		}
	}
}

func BenchmarkEncodeNext(b *testing.B) {
	resp := &graphql.Response{
		Data:       []byte(`{"generationEvents":{"seq":12,"kind":"PROGRESS","generationId":"R2VuZXJhdGlvbjowMTkzYjQ0Mi1hYWFhLTdiYmItOGNjYy0xMjM0NTY3ODlhYmM=","createdAt":"2026-11-30T11:00:00.123456Z","fraction":0.5,"step":1,"totalSteps":2,"message":"denoising","previewUrl":null}}`),
		Extensions: map[string]any{"cost": map[string]any{"requested": 2, "remaining": 19998}},
	}
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			p, _ := json.Marshal(resp)
			_, _ = json.Marshal(struct {
				ID      string          `json:"id,omitempty"`
				Type    string          `json:"type"`
				Payload json.RawMessage `json:"payload,omitempty"`
			}{"1", "next", p})
		}
	})
	b.Run("append", func(b *testing.B) {
		var msg []byte
		for b.Loop() {
			msg, _ = AppendResponseMessage(msg[:0], "1", "next", resp, Extension{})
		}
	})
}
