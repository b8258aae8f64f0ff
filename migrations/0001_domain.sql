-- Academic domain: institutions, users, reset tokens, disciplines, classes, enrollments,
-- notifications. Every tenant-owned row carries institution_id.

CREATE TABLE institutions (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id              uuid PRIMARY KEY,
    institution_id  uuid REFERENCES institutions (id),
    role            text NOT NULL CHECK (role IN ('adm', 'academic', 'teacher', 'student')),
    name            text NOT NULL,
    email           text NOT NULL UNIQUE,
    password_hash   text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'adm') = (institution_id IS NULL))
);
CREATE INDEX users_institution_role ON users (institution_id, role, id);

CREATE TABLE reset_password_tokens (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id),
    token_hash  text NOT NULL UNIQUE,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE disciplines (
    id              uuid PRIMARY KEY,
    institution_id  uuid NOT NULL REFERENCES institutions (id),
    name            text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (institution_id, name)
);
CREATE INDEX disciplines_institution ON disciplines (institution_id, id);

CREATE TABLE classes (
    id              uuid PRIMARY KEY,
    institution_id  uuid NOT NULL REFERENCES institutions (id),
    discipline_id   uuid NOT NULL REFERENCES disciplines (id),
    teacher_id      uuid NOT NULL REFERENCES users (id),
    period          text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX classes_institution ON classes (institution_id, id);

CREATE TABLE enrollments (
    class_id        uuid NOT NULL REFERENCES classes (id),
    student_id      uuid NOT NULL REFERENCES users (id),
    institution_id  uuid NOT NULL REFERENCES institutions (id),
    n1              double precision,
    n2              double precision,
    n3              double precision,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (class_id, student_id)
);

CREATE TABLE notifications (
    id              uuid PRIMARY KEY,
    institution_id  uuid NOT NULL REFERENCES institutions (id),
    user_id         uuid NOT NULL REFERENCES users (id),
    kind            text NOT NULL,
    message         text NOT NULL,
    dedup_key       text UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    read_at         timestamptz
);
CREATE INDEX notifications_user ON notifications (user_id, id DESC);

-- Demo data seeded for an institution, recorded in the same transaction as the data, so
-- seeding twice creates nothing twice.
CREATE TABLE demo_seeds (
    institution_id  uuid PRIMARY KEY REFERENCES institutions (id),
    task_id         uuid NOT NULL,
    seeded_at       timestamptz NOT NULL DEFAULT now()
);

-- E-mails sent by tasks, one per task lineage: a retry never sends twice.
CREATE TABLE sent_emails (
    lineage_id  uuid PRIMARY KEY,
    message_id  text NOT NULL,
    recipient   text NOT NULL,
    sent_at     timestamptz NOT NULL DEFAULT now()
);

-- Settings generated on first start and shared by every process (e.g. a JWT secret when
-- none is configured).
CREATE TABLE settings (
    key    text PRIMARY KEY,
    value  text NOT NULL
);
