// Package work is "My Works": the items a user keeps (uploads, generations,
// edits), the images behind them in object storage, the per-user storage
// quota, and the bin that deleted works wait in before they are purged.
package work

import (
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/clock"
	"github.com/fastimage/api/internal/imaging"
	"github.com/fastimage/api/internal/storage"
)

// Status is where a work stands. A generated work and the generation that
// makes it share it (generate.Status is this type).
type Status string

// The statuses; an upload is born succeeded.
const (
	StatusQueued    Status = "queued"
	StatusRunning   Status = "running"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	StatusCanceled  Status = "canceled"
)

// Kinds and asset roles.
const (
	KindUpload     = "upload"
	KindGeneration = "generation"
	KindEdit       = "edit"

	RoleSource    = "source"
	RoleMask      = "mask"
	RoleOutput    = "output"
	RolePreview   = "preview"
	RoleThumbnail = "thumbnail"
)

// QuotaExceeded is the code of an upload that would pass the storage quota.
const QuotaExceeded apperr.Code = "QUOTA_EXCEEDED"

// Work is one item of My Works.
type Work struct {
	bun.BaseModel `bun:"table:works"`

	ID           uuid.UUID  `bun:"id,pk,type:uuid"`
	UserID       uuid.UUID  `bun:"user_id,type:uuid"`
	Kind         string     `bun:"kind"`
	Title        string     `bun:"title"`
	Prompt       *string    `bun:"prompt"`
	Status       Status     `bun:"status"`
	SourceWorkID *uuid.UUID `bun:"source_work_id,type:uuid"`
	DeletedAt    *time.Time `bun:"deleted_at"`
	CreatedAt    time.Time  `bun:"created_at,nullzero,default:now()"`
	UpdatedAt    time.Time  `bun:"updated_at,nullzero,default:now()"`
}

// Asset is one stored blob of a work: an image in some role, or one of its
// thumbnails.
type Asset struct {
	bun.BaseModel `bun:"table:assets"`

	ID          uuid.UUID  `bun:"id,pk,type:uuid"`
	WorkID      uuid.UUID  `bun:"work_id,type:uuid"`
	UserID      uuid.UUID  `bun:"user_id,type:uuid"`
	Role        string     `bun:"role"`
	ParentID    *uuid.UUID `bun:"parent_id,type:uuid"`
	ThumbSize   *int       `bun:"thumb_size"`
	Position    int        `bun:"position"`
	StorageKey  string     `bun:"storage_key"`
	ContentType string     `bun:"content_type"`
	Bytes       int64      `bun:"bytes"`
	Width       int        `bun:"width"`
	Height      int        `bun:"height"`
	SHA256      string     `bun:"sha256"`
	CreatedAt   time.Time  `bun:"created_at,nullzero,default:now()"`
}

// Image is an asset as the API shows it: with its thumbnails at hand.
type Image struct {
	Asset
	Thumbnails map[int]*Asset // by size
}

// Config holds the works settings.
type Config struct {
	MaxUploadBytes int64
	MaxPixels      int64
	// QuotaBytes is what one user may keep in storage.
	QuotaBytes int64
	// URLTTL is how long signed image URLs work (at least; they are
	// rounded up so that repeated reads return the same, cacheable URL).
	URLTTL time.Duration
	// Retention is how long deleted works can be restored before the purge.
	Retention time.Duration
	// ThumbnailSizes are the long sides of the previews made of each image.
	ThumbnailSizes []int
	// UploadURLTTL is how long a direct-upload URL works.
	UploadURLTTL time.Duration
	// MaxDecodeBytes is the most memory decoding one image may take, as its
	// header tells (imaging.Limits); zero means
	// imaging.DefaultMaxDecodeBytes. Bigger images are refused on upload.
	MaxDecodeBytes int64
	// MaxConcurrentDecodes is how many images the service decodes at once
	// (to make thumbnails); zero means DefaultMaxConcurrentDecodes. With
	// MaxDecodeBytes it bounds the memory decoding takes.
	MaxConcurrentDecodes int
	// Clock tells the time URLs expire and deleted works stop being
	// restorable by; nil means the machine's clock. The database's own
	// now() (when a work was deleted, when the bin is purged) stays real.
	Clock clock.Clock
}

// DefaultMaxConcurrentDecodes is Config.MaxConcurrentDecodes's default.
const DefaultMaxConcurrentDecodes = 2

// Service runs My Works.
type Service struct {
	db     *bun.DB
	bucket storage.Bucket
	cfg    Config
	clock  clock.Clock
	urls   urlCache
	// decodes holds a token for each image being decoded.
	decodes chan struct{}
}

// New returns a Service storing blobs in bucket.
func New(db *bun.DB, bucket storage.Bucket, cfg Config) *Service {
	if len(cfg.ThumbnailSizes) == 0 {
		cfg.ThumbnailSizes = []int{256, 1024}
	}
	if cfg.UploadURLTTL == 0 {
		cfg.UploadURLTTL = 15 * time.Minute
	}
	if cfg.MaxConcurrentDecodes <= 0 {
		cfg.MaxConcurrentDecodes = DefaultMaxConcurrentDecodes
	}
	return &Service{db: db, bucket: bucket, cfg: cfg, clock: clock.Or(cfg.Clock),
		decodes: make(chan struct{}, cfg.MaxConcurrentDecodes)}
}

// imageLimits are the limits every image the service takes in must meet.
func (s *Service) imageLimits() imaging.Limits {
	return imaging.Limits{MaxBytes: s.cfg.MaxUploadBytes, MaxPixels: s.cfg.MaxPixels, MaxDecodeBytes: s.cfg.MaxDecodeBytes}
}

// Bucket returns the bucket the service stores blobs in.
func (s *Service) Bucket() storage.Bucket { return s.bucket }

func notFound() error {
	return apperr.Errorf(apperr.NotFound, "No such work.")
}

// workPrefix is where every blob of a work lives.
func workPrefix(userID, workID uuid.UUID) string {
	return storage.UserPrefix(userID) + "works/" + workID.String() + "/"
}
