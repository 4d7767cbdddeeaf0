-- A token vault and a plan store as wattplan 0.1.0 made them (before schema migrations),
-- on PostgreSQL 15: 'pg_dump --inserts --no-owner --no-privileges', psql meta-commands and
-- the search_path reset removed. Table prefix legacy_ (tests substitute their own).
-- Tokens are encrypted with the test key in tests/hostile/test_operations.py.

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

CREATE TABLE public.legacy_auth_sessions (
    state_hash character varying(64) NOT NULL,
    client_id character varying(255) NOT NULL,
    customer_id character varying(255) NOT NULL,
    redirect_uri text NOT NULL,
    verifier_enc text NOT NULL,
    binding_hash character varying(64),
    created_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    used_at timestamp with time zone
);

CREATE TABLE public.legacy_customers (
    id character varying(200) NOT NULL,
    created_at timestamp with time zone NOT NULL,
    health character varying(40) NOT NULL,
    last_success_at timestamp with time zone,
    last_failure_at timestamp with time zone,
    failures integer NOT NULL,
    error_kind character varying(80),
    error text,
    attempt_key character varying(200)
);

CREATE TABLE public.legacy_device_state (
    customer_id character varying(200) NOT NULL,
    version integer NOT NULL,
    devices text NOT NULL,
    updated_at timestamp with time zone NOT NULL
);

CREATE TABLE public.legacy_grants (
    id integer NOT NULL,
    client_id character varying(255) NOT NULL,
    customer_id character varying(255) NOT NULL,
    kind character varying(32) NOT NULL,
    status character varying(32) NOT NULL,
    access_token_enc text,
    refresh_token_enc text,
    token_type character varying(32) NOT NULL,
    expires_at timestamp with time zone,
    scope text,
    version integer NOT NULL,
    refresh_attempt character varying(64),
    refresh_lease_until timestamp with time zone,
    reauthorization_reason text,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL
);

CREATE SEQUENCE public.legacy_grants_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.legacy_grants_id_seq OWNED BY public.legacy_grants.id;

CREATE TABLE public.legacy_plans (
    id integer NOT NULL,
    customer_id character varying(200) NOT NULL,
    inputs_key character varying(64) NOT NULL,
    created_at timestamp with time zone NOT NULL,
    horizon_start timestamp with time zone NOT NULL,
    horizon_end timestamp with time zone NOT NULL,
    reason character varying(80) NOT NULL,
    status character varying(40) NOT NULL,
    cost_eur double precision,
    baseline_cost_eur double precision,
    savings_eur double precision,
    prices_fingerprint character varying(64) NOT NULL,
    state_fingerprint character varying(64) NOT NULL,
    prices text NOT NULL,
    device_state text NOT NULL,
    document text NOT NULL
);

CREATE SEQUENCE public.legacy_plans_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.legacy_plans_id_seq OWNED BY public.legacy_plans.id;

ALTER TABLE ONLY public.legacy_grants ALTER COLUMN id SET DEFAULT nextval('public.legacy_grants_id_seq'::regclass);

ALTER TABLE ONLY public.legacy_plans ALTER COLUMN id SET DEFAULT nextval('public.legacy_plans_id_seq'::regclass);

INSERT INTO public.legacy_auth_sessions VALUES ('19584c186f02a077ef9adc93386b4d3c0e63f6463b9e3e34758a659b732760e3', 'hems', 'c2', 'http://127.0.0.1:9/cb', 'gAAAAABrD3GRQyeZ92XzldiVZvjLxvduJXL3Z4RaOE8QjxDx2rgijPFmYNTOuI47sWPczfrrODRBljxzJRE-T5Fpxucu9DIbrWAjwmUySO-fEIdnfJkCZgHwo9xEul-lAWI_3TzQG8s_GFBGl098Td56TFO6PkOaTQ==', NULL, '2026-01-20 12:00:00+00', '2036-01-18 12:00:00+00', NULL);

INSERT INTO public.legacy_customers VALUES ('c1', '2026-01-20 12:00:00+00', 'ok', '2026-01-20 12:00:00+00', NULL, 0, NULL, NULL, 'k1');

INSERT INTO public.legacy_device_state VALUES ('c1', 1, '{"car":{"soc_kwh":12.5}}', '2026-01-20 12:00:00+00');

INSERT INTO public.legacy_grants VALUES (1, 'hems', 'c1', 'authorization_code', 'active', 'gAAAAABrD3GRE-2lfL-U6ndQlHxnqubExRSidiashtYtM7vq67ubkprKnLuNnNrg8Vv1maLZyE1BUlkhFGo6yI3FWtbe1oYusQ==', 'gAAAAABrD3GRra86ImBsgQDE483nv4tRpFfBfmNbpwxKfWysMI338bqQx6R0YCHpDZnBHnHMFpwmrki3Z4rcSbToun8l_yHwLw==', 'Bearer', '2026-01-20 13:00:00+00', 'read:*', 1, NULL, NULL, NULL, '2026-01-20 12:00:00+00', '2026-01-20 12:00:00+00');

INSERT INTO public.legacy_plans VALUES (1, 'c1', '6f2b728c546ed258e26813333ad19fa4ee858bae0d29be0a09298cce015dfd65', '2026-01-20 12:00:00+00', '2026-01-20 12:00:00+00', '2026-01-20 13:00:00+00', 'new_prices', 'optimal', 1.25, 2.5, 1.25, 'fp1', 'a62ea5f27c4bcce4cb1a4138489b7d45', '[["2026-01-20T12:00:00+00:00",30.0],["2026-01-20T12:15:00+00:00",31.5],["2026-01-20T12:30:00+00:00",null],["2026-01-20T12:45:00+00:00",29.0]]', '{"car":{"soc_kwh":10.0}}', '{"status":"optimal","cost_eur":1.25}');

SELECT pg_catalog.setval('public.legacy_grants_id_seq', 1, true);

SELECT pg_catalog.setval('public.legacy_plans_id_seq', 1, true);

ALTER TABLE ONLY public.legacy_auth_sessions
    ADD CONSTRAINT legacy_auth_sessions_pkey PRIMARY KEY (state_hash);

ALTER TABLE ONLY public.legacy_customers
    ADD CONSTRAINT legacy_customers_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.legacy_device_state
    ADD CONSTRAINT legacy_device_state_pkey PRIMARY KEY (customer_id);

ALTER TABLE ONLY public.legacy_grants
    ADD CONSTRAINT legacy_grants_key UNIQUE (client_id, customer_id);

ALTER TABLE ONLY public.legacy_grants
    ADD CONSTRAINT legacy_grants_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.legacy_plans
    ADD CONSTRAINT legacy_plans_inputs_uq UNIQUE (customer_id, inputs_key);

ALTER TABLE ONLY public.legacy_plans
    ADD CONSTRAINT legacy_plans_pkey PRIMARY KEY (id);

CREATE INDEX ix_legacy_plans_customer_id ON public.legacy_plans USING btree (customer_id);

