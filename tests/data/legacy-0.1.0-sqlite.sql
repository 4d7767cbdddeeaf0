-- A token vault and a plan store as wattplan 0.1.0 made them (before schema migrations),
-- on SQLite: 'sqlite3 FILE .dump'. Table prefix legacy_ (tests substitute their own).
-- Tokens are encrypted with the test key in tests/hostile/test_operations.py.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE legacy_grants (
	id INTEGER NOT NULL, 
	client_id VARCHAR(255) NOT NULL, 
	customer_id VARCHAR(255) NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	status VARCHAR(32) NOT NULL, 
	access_token_enc TEXT, 
	refresh_token_enc TEXT, 
	token_type VARCHAR(32) NOT NULL, 
	expires_at DATETIME, 
	scope TEXT, 
	version INTEGER NOT NULL, 
	refresh_attempt VARCHAR(64), 
	refresh_lease_until DATETIME, 
	reauthorization_reason TEXT, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT legacy_grants_key UNIQUE (client_id, customer_id)
);
INSERT INTO legacy_grants VALUES(1,'hems','c1','authorization_code','active','gAAAAABrD3GLuGBFuewbeU6n6oC1YD_r1azf2eU_9ualLmmITdGunuQMOWg8QntyhgzoOQNisoylvDRD3OYITO5qOdHoRIyP6g==','gAAAAABrD3GLHbcl8jNLR2TSkB_ZkEom1pzaAehWoyN_p8a7bqhpmfn4rToG90oI-e6cekFfk6zD-K59K2PcA8MwbIp6r6wQCw==','Bearer','2026-01-20 13:00:00.000000','read:*',1,NULL,NULL,NULL,'2026-01-20 12:00:00.000000','2026-01-20 12:00:00.000000');
CREATE TABLE legacy_auth_sessions (
	state_hash VARCHAR(64) NOT NULL, 
	client_id VARCHAR(255) NOT NULL, 
	customer_id VARCHAR(255) NOT NULL, 
	redirect_uri TEXT NOT NULL, 
	verifier_enc TEXT NOT NULL, 
	binding_hash VARCHAR(64), 
	created_at DATETIME NOT NULL, 
	expires_at DATETIME NOT NULL, 
	used_at DATETIME, 
	PRIMARY KEY (state_hash)
);
INSERT INTO legacy_auth_sessions VALUES('19584c186f02a077ef9adc93386b4d3c0e63f6463b9e3e34758a659b732760e3','hems','c2','http://127.0.0.1:9/cb','gAAAAABrD3GLt7NoqRLIh62SKWwlWM4RJlQOJU-qPgmZW2Im4NSGUH5-b4ZRRQ1Mu1mMDH_7eLypS_JvaJa-vz3BXVQ0ZVi43mHJ7mrp67kY3olIV4V1k9yv88tIqv0ouCTtjbYaZCptwFLPfeO1OgbHkx0KwwGxog==',NULL,'2026-01-20 12:00:00.000000','2036-01-18 12:00:00.000000',NULL);
CREATE TABLE legacy_customers (
	id VARCHAR(200) NOT NULL, 
	created_at DATETIME NOT NULL, 
	health VARCHAR(40) NOT NULL, 
	last_success_at DATETIME, 
	last_failure_at DATETIME, 
	failures INTEGER NOT NULL, 
	error_kind VARCHAR(80), 
	error TEXT, 
	attempt_key VARCHAR(200), 
	PRIMARY KEY (id)
);
INSERT INTO legacy_customers VALUES('c1','2026-01-20 12:00:00.000000','ok','2026-01-20 12:00:00.000000',NULL,0,NULL,NULL,'k1');
CREATE TABLE legacy_plans (
	id INTEGER NOT NULL, 
	customer_id VARCHAR(200) NOT NULL, 
	inputs_key VARCHAR(64) NOT NULL, 
	created_at DATETIME NOT NULL, 
	horizon_start DATETIME NOT NULL, 
	horizon_end DATETIME NOT NULL, 
	reason VARCHAR(80) NOT NULL, 
	status VARCHAR(40) NOT NULL, 
	cost_eur FLOAT, 
	baseline_cost_eur FLOAT, 
	savings_eur FLOAT, 
	prices_fingerprint VARCHAR(64) NOT NULL, 
	state_fingerprint VARCHAR(64) NOT NULL, 
	prices TEXT NOT NULL, 
	device_state TEXT NOT NULL, 
	document TEXT NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT legacy_plans_inputs_uq UNIQUE (customer_id, inputs_key)
);
INSERT INTO legacy_plans VALUES(1,'c1','6f2b728c546ed258e26813333ad19fa4ee858bae0d29be0a09298cce015dfd65','2026-01-20 12:00:00.000000','2026-01-20 12:00:00.000000','2026-01-20 13:00:00.000000','new_prices','optimal',1.25,2.5,1.25,'fp1','a62ea5f27c4bcce4cb1a4138489b7d45','[["2026-01-20T12:00:00+00:00",30.0],["2026-01-20T12:15:00+00:00",31.5],["2026-01-20T12:30:00+00:00",null],["2026-01-20T12:45:00+00:00",29.0]]','{"car":{"soc_kwh":10.0}}','{"status":"optimal","cost_eur":1.25}');
CREATE TABLE legacy_device_state (
	customer_id VARCHAR(200) NOT NULL, 
	version INTEGER NOT NULL, 
	devices TEXT NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (customer_id)
);
INSERT INTO legacy_device_state VALUES('c1',1,'{"car":{"soc_kwh":12.5}}','2026-01-20 12:00:00.000000');
CREATE INDEX ix_legacy_plans_customer_id ON legacy_plans (customer_id);
COMMIT;
