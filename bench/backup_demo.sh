#!/usr/bin/env bash
# Times `manage.py backup` and `manage.py restore` on the demo data (docs/backup.md, "Measured").
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust). Works in a scratch folder; drops only
# the two databases it creates.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
WORK=$(mktemp -d /tmp/pdl1-backup-demo.XXXXXX)
SRC=pdl1_backup_demo_src DST=pdl1_backup_demo_dst
PG="-h 127.0.0.1 -p 5432 -U postgres"
dropdb $PG --if-exists $SRC; dropdb $PG --if-exists $DST
createdb $PG $SRC; createdb $PG $DST
export SECRET_KEY=bench-only PDL1_VAR_DIR=$WORK/var
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$SRC MEDIA_ROOT=$WORK/media
$PY manage.py migrate --noinput -v 0
$PY manage.py load_demo --not-production > /dev/null
# A finished whole-slide analysis of the demo slide: its detection store is part of the backup.
$PY manage.py analyze_slide 1 --json $WORK/analysis.json > /dev/null 2>&1 || echo "analysis skipped (see $WORK)"
/usr/bin/time -f "backup wall %e s, max RSS %M KB" $PY manage.py backup $WORK/backup
/usr/bin/time -f "restore wall %e s, max RSS %M KB" \
    $PY manage.py restore $WORK/backup --database-url postgres://postgres@127.0.0.1:5432/$DST --media-root $WORK/restored-media
du -sh $WORK/backup $WORK/backup/database.pgdump $WORK/backup/media
dropdb $PG $SRC; dropdb $PG $DST
rm -rf "$WORK"
