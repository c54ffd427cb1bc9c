package graph

import (
	"github.com/google/uuid"

	"github.com/fastimage/api/graph/model"
	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/internal/privacy"
)

// privacyPayload wraps a request changed by a mutation.
func privacyPayload(req *privacy.Request, err error) (*model.PrivacyRequestPayload, error) {
	if err != nil {
		return nil, err
	}
	return &model.PrivacyRequestPayload{Request: req}, nil
}

func privacyConnection(page *db.Page[privacy.Request], after *string) *model.PrivacyRequestConnection {
	edges, pi := connection(page, "PrivacyRequest", after, func(q *privacy.Request) uuid.UUID { return q.ID },
		func(cursor string, q *privacy.Request) *model.PrivacyRequestEdge {
			return &model.PrivacyRequestEdge{Cursor: cursor, Node: q}
		})
	return &model.PrivacyRequestConnection{Edges: edges, PageInfo: pi, TotalCount: page.TotalCount}
}
