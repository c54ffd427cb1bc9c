-- My Works: every item a user keeps, and every blob behind it.

CREATE TABLE works (
  id             uuid PRIMARY KEY DEFAULT uuidv7(),
  user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  kind           text NOT NULL CHECK (kind IN ('upload', 'generation', 'edit')),
  title          text NOT NULL DEFAULT '' CHECK (length(title) <= 200),
  prompt         text CHECK (length(prompt) <= 4000),
  status         text NOT NULL DEFAULT 'ready' CHECK (status IN ('pending', 'processing', 'ready', 'failed')),
  source_work_id uuid REFERENCES works (id) ON DELETE SET NULL,
  deleted_at     timestamptz,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX works_list_idx ON works (user_id, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX works_purge_idx ON works (deleted_at) WHERE deleted_at IS NOT NULL;

CREATE TABLE assets (
  id              uuid PRIMARY KEY DEFAULT uuidv7(),
  work_id         uuid NOT NULL REFERENCES works (id) ON DELETE CASCADE,
  user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  role            text NOT NULL CHECK (role IN ('source', 'mask', 'output', 'preview', 'thumbnail')),
  -- A thumbnail belongs to the asset it previews, at one size.
  parent_id       uuid REFERENCES assets (id) ON DELETE CASCADE,
  thumb_size      int CHECK (thumb_size > 0),
  position        int NOT NULL DEFAULT 0,
  storage_key     text NOT NULL,
  content_type    text NOT NULL,
  bytes           bigint NOT NULL CHECK (bytes >= 0),
  width           int NOT NULL CHECK (width > 0),
  height          int NOT NULL CHECK (height > 0),
  sha256          text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  CHECK ((role = 'thumbnail') = (parent_id IS NOT NULL AND thumb_size IS NOT NULL))
);
CREATE UNIQUE INDEX assets_storage_key_key ON assets (storage_key);
CREATE INDEX assets_work_idx ON assets (work_id, position);

-- Bytes a user keeps (works in the bin included, until purged), moved only by
-- conditional updates so that the quota holds under concurrency.
CREATE TABLE storage_usage (
  user_id    uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  used_bytes bigint NOT NULL DEFAULT 0 CHECK (used_bytes >= 0)
);

-- Direct uploads: a signed PUT URL, then completeUpload.
CREATE TABLE uploads (
  id             uuid PRIMARY KEY DEFAULT uuidv7(),
  user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  filename       text NOT NULL,
  content_type   text NOT NULL,
  declared_bytes bigint NOT NULL CHECK (declared_bytes > 0),
  title          text NOT NULL DEFAULT '',
  staging_key    text NOT NULL,
  work_id        uuid REFERENCES works (id) ON DELETE SET NULL,
  expires_at     timestamptz NOT NULL,
  completed_at   timestamptz,
  created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX uploads_stale_idx ON uploads (expires_at) WHERE completed_at IS NULL;
