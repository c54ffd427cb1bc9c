package db

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// Page is one page of a list in newest-first order, read by keyset: the
// rows whose id (UUIDv7, so in creation order) comes before a cursor.
type Page[T any] struct {
	Items []T
	// HasNext is true when rows follow this page.
	HasNext bool
	// TotalCount is how many rows the filter matches in all.
	TotalCount int
}

// ListPage reads up to first rows of T older than after (nil: the newest),
// newest first by idCol, and how many rows match in all. filter narrows a
// select of T (joins and wheres); it is applied to both queries.
func ListPage[T any](ctx context.Context, idb bun.IDB, idCol string, filter func(*bun.SelectQuery) *bun.SelectQuery,
	first int, after *uuid.UUID) (*Page[T], error) {
	var items []T
	q := filter(idb.NewSelect().Model(&items)).OrderExpr("? DESC", bun.Ident(idCol)).Limit(int64(first + 1))
	if after != nil {
		q = q.Where("? < ?", bun.Ident(idCol), *after)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	total, err := filter(idb.NewSelect().Model((*T)(nil))).Count(ctx)
	if err != nil {
		return nil, fmt.Errorf("count: %w", err)
	}
	p := &Page[T]{Items: items, TotalCount: int(total)}
	if len(items) > first {
		p.Items, p.HasNext = items[:first], true
	}
	return p, nil
}
