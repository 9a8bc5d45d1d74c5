-- Projects, tasks, comments, the approval history, the members projection and the per-project
-- change log the watch stream reads. Every table belongs to a tenant (row-level security).

CREATE TABLE projects (
    tenant_id            uuid        NOT NULL,
    id                   uuid        NOT NULL,
    name                 text        NOT NULL,
    description          text        NOT NULL DEFAULT '',
    archived             boolean     NOT NULL DEFAULT false,
    created_by           text        NOT NULL,
    required_approvals   integer     NOT NULL DEFAULT 1 CHECK (required_approvals BETWEEN 1 AND 10),
    approval_sla_seconds bigint      CHECK (approval_sla_seconds > 0),
    -- The etag: bumped by every change to the project row.
    version              bigint      NOT NULL DEFAULT 1,
    -- The last sequence number handed to a change of one of the project's tasks. Taken with
    -- `UPDATE ... RETURNING` so the row lock orders the changes' commits by sequence.
    change_seq           bigint      NOT NULL DEFAULT 0,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    -- Soft delete: hidden from every read at once, erased by the purge job at purge_at.
    deleted_at           timestamptz,
    purge_at             timestamptz,
    PRIMARY KEY (tenant_id, id)
);
SELECT enable_tenant_rls('projects');
CREATE INDEX projects_by_creation ON projects (tenant_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;

CREATE TABLE tasks (
    tenant_id       uuid        NOT NULL,
    id              uuid        NOT NULL,
    project_id      uuid        NOT NULL,
    title           text        NOT NULL,
    description     text        NOT NULL DEFAULT '',
    state           text        NOT NULL CHECK (state IN
        ('draft', 'assigned', 'in_progress', 'pending_approval', 'approved', 'rejected', 'completed')),
    assignee_id     uuid,
    created_by      text        NOT NULL,
    due_at          timestamptz,
    -- The etag: bumped by every change to the task.
    version         bigint      NOT NULL DEFAULT 1,
    -- Submissions so far (the approval round) and approvals received in the current round.
    submissions     integer     NOT NULL DEFAULT 0,
    approvals       integer     NOT NULL DEFAULT 0,
    submitted_at    timestamptz,
    -- The move that produced the current state and who made it: re-sending it is a no-op.
    last_move       text,
    last_actor      uuid,
    -- The due time `delivery.task.overdue` was raised for (once per due time).
    overdue_raised_for timestamptz,
    -- Title and description plus character n-grams of their CJK runs (computed in Rust):
    -- Postgres' `simple` configuration does not split Chinese, Japanese or Korean.
    search_text     text        NOT NULL DEFAULT '',
    search          tsvector    GENERATED ALWAYS AS (to_tsvector('simple', search_text)) STORED,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    deleted_at      timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, project_id) REFERENCES projects (tenant_id, id) ON DELETE CASCADE
);
SELECT enable_tenant_rls('tasks');
CREATE INDEX tasks_by_update ON tasks (tenant_id, project_id, updated_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX tasks_by_assignee ON tasks (tenant_id, assignee_id) WHERE deleted_at IS NULL;
CREATE INDEX tasks_search ON tasks USING gin (search);

CREATE TABLE comments (
    tenant_id  uuid        NOT NULL,
    id         uuid        NOT NULL,
    task_id    uuid        NOT NULL,
    author_id  text        NOT NULL,
    body       text        NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, task_id) REFERENCES tasks (tenant_id, id) ON DELETE CASCADE
);
SELECT enable_tenant_rls('comments');
CREATE INDEX comments_by_task ON comments (tenant_id, task_id, created_at, id);

-- Append-only: rows are inserted, never changed (the trigger refuses updates); they go only
-- with their task when a deleted project is purged.
CREATE TABLE approvals (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL,
    task_id     uuid        NOT NULL,
    -- Decision order within the task (the task's row lock serialises decisions).
    position    integer     NOT NULL,
    submission  integer     NOT NULL,
    decision    text        NOT NULL CHECK (decision IN ('approved', 'rejected')),
    reviewer_id uuid        NOT NULL,
    comment     text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT approvals_position_key UNIQUE (tenant_id, task_id, position),
    FOREIGN KEY (tenant_id, task_id) REFERENCES tasks (tenant_id, id) ON DELETE CASCADE
);
SELECT enable_tenant_rls('approvals');

CREATE FUNCTION approvals_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the approval history is append-only';
END;
$$;
CREATE TRIGGER approvals_append_only BEFORE UPDATE ON approvals
    FOR EACH ROW EXECUTE FUNCTION approvals_append_only();

-- Delivery's projection of the tenant's members, from tenancy's member events.
CREATE TABLE members (
    tenant_id  uuid        NOT NULL,
    user_id    uuid        NOT NULL,
    active     boolean     NOT NULL,
    -- tenancy's membership sequence of the last event applied; older events are ignored.
    version    bigint      NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
SELECT enable_tenant_rls('members');

-- Every change to a project's tasks in commit order, written in the change's transaction: the
-- watch stream replays it after a resume point, so a reconnect (or a restart) loses nothing.
CREATE TABLE task_changes (
    tenant_id   uuid        NOT NULL,
    project_id  uuid        NOT NULL,
    sequence    bigint      NOT NULL,
    event_id    uuid        NOT NULL,
    event_type  text        NOT NULL,
    task_id     uuid        NOT NULL,
    -- The task as the change left it (domain JSON).
    task        jsonb       NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, project_id, sequence),
    CONSTRAINT task_changes_event_key UNIQUE (tenant_id, event_id),
    FOREIGN KEY (tenant_id, project_id) REFERENCES projects (tenant_id, id) ON DELETE CASCADE
);
SELECT enable_tenant_rls('task_changes');
