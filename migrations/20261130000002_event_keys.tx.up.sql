-- Generation events written before URLs were signed at delivery carry the
-- URL signed then, expired long since, and no storage key: a replay could
-- not sign a fresh one. Give each OUTPUT event the key of the image it names
-- (an image purged since keeps none: its URL reads null), and drop the dead
-- URLs; previews are deleted when a generation ends.
UPDATE generation_events AS e
  SET payload = (e.payload - 'url') || jsonb_build_object('key', a.storage_key)
  FROM assets AS a
  WHERE e.kind = 'OUTPUT' AND e.payload->'key' IS NULL AND a.id = (e.payload->>'imageId')::uuid;
UPDATE generation_events SET payload = payload - 'url'
  WHERE kind = 'OUTPUT' AND payload->'url' IS NOT NULL;
UPDATE generation_events SET payload = payload - 'previewUrl'
  WHERE kind = 'PROGRESS' AND payload->'previewUrl' IS NOT NULL;
