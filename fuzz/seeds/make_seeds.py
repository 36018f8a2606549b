#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz targets into fuzz/corpus/<target>/seed-*: the
example requests of the XKS specification and keyhold's tests, in each target's input
format (see core/src/fuzzing.rs). SigV4 seeds are signed with the target's fixed secret
at its fixed clock, so that they verify and the fuzzer starts from accepted requests."""
import hashlib, hmac, json, os, sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "corpus")
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
AMZ_DATE = "20240101T000000Z"

MD = {"awsPrincipalArn": "arn:aws:iam::123456789012:user/Alice",
      "kmsKeyArn": "arn:aws:kms:us-east-2:123456789012:key/mrk-1",
      "kmsOperation": "Encrypt", "kmsRequestId": "4112f4d6-db54-4af4-ae30-c55a22a8dfae",
      "kmsViaService": "ebs", "awsSourceVpc": "vpc-0123", "awsSourceVpce": "vpce-0123"}
HEALTH = {"requestMetadata": {"kmsRequestId": "r", "kmsOperation": "CreateCustomKeyStore"}}
METADATA = {"requestMetadata": dict(MD, kmsOperation="DescribeKey")}
ENCRYPT = {"requestMetadata": MD, "plaintext": "SGVsbG8gV29ybGQh",
           "encryptionAlgorithm": "AES_GCM",
           "additionalAuthenticatedData": "cHJvamVjdD1uaWxlLGRlcGFydG1lbnQ9bWFya2V0aW5n",
           "ciphertextDataIntegrityValueAlgorithm": "SHA_256"}
DECRYPT = {"requestMetadata": dict(MD, kmsOperation="Decrypt"),
           "ciphertext": "ghxkK1txeDNn3q8Y", "ciphertextMetadata": "a2V5X3ZlcnNpb249MQ==",
           "encryptionAlgorithm": "AES_GCM",
           "additionalAuthenticatedData": "cHJvamVjdD1uaWxlLGRlcGFydG1lbnQ9bWFya2V0aW5n",
           "initializationVector": "HMXEY3dAVV0q0Jm0", "authenticationTag": "vaCD2ArHVVpzu4LsAfc5QA=="}


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def j(v):
    return json.dumps(v, separators=(",", ":")).encode()


def hm(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sign(method, path, query, headers, body, region="us-east-2", service="kms-xks-proxy"):
    """AWS SigV4 as AWS KMS signs XKS requests (paths here need no escaping)."""
    names = sorted({k.lower() for k, _ in headers})
    hdr = {}
    for k, v in headers:
        hdr.setdefault(k.lower(), []).append(" ".join(v.split()))
    canon_h = "".join(f"{n}:{','.join(hdr[n])}\n" for n in names)
    params = sorted(p.split("=", 1) if "=" in p else [p, ""] for p in query.split("&") if p)
    canon_q = "&".join(f"{k}={v}" for k, v in params)
    creq = "\n".join([method, path, canon_q, canon_h, ";".join(names),
                      hashlib.sha256(body).hexdigest()])
    scope = f"{AMZ_DATE[:8]}/{region}/{service}/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", AMZ_DATE, scope,
                     hashlib.sha256(creq.encode()).hexdigest()])
    k = hm(("AWS4" + SECRET).encode(), AMZ_DATE[:8])
    for part in (region, service, "aws4_request"):
        k = hm(k, part)
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    auth = (f"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={sig}")
    lines = [auth, method, path, query] + [f"{k}: {v}" for k, v in headers] + [""]
    return "\n".join(lines).encode() + b"\n" + body


def main():
    base = "/tenants/acme/kms/xks/v1"
    for i, (path, body) in enumerate([
        (f"{base}/health", j(HEALTH)),
        (f"{base}/keys/k-1/metadata", j(METADATA)),
        (f"{base}/keys/k-1/encrypt", j(ENCRYPT)),
        (f"{base}/keys/k-1/decrypt", j(DECRYPT)),
        ("/kms/xks/v1/health", b""),
    ]):
        headers = [("host", "xks.example.com"), ("x-amz-date", AMZ_DATE),
                   ("content-type", "application/json")]
        if i == 2:
            headers.append(("x-amz-content-sha256", hashlib.sha256(body).hexdigest()))
        write("sigv4", f"signed-{i}", sign("POST", path, "", headers, body))
    write("sigv4", "query", sign("GET", "/a/b", "b=2&a=1&c=",
                                 [("host", "h"), ("x-amz-date", AMZ_DATE),
                                  ("x-custom", "  a   b "), ("x-custom", "c")], b""))
    write("sigv4", "unsigned", b"AWS4-HMAC-SHA256 Credential=A/20240101/r/kms-xks-proxy/"
          b"aws4_request, SignedHeaders=host;x-amz-date, Signature=" + b"0" * 64 +
          b"\nPOST\n/\n\nx-amz-date: " + AMZ_DATE.encode() + b"\n\n")

    for i, p in enumerate(["/tenants/acme/kms/xks/v1/health", "/kms/xks/v1/health",
                           "/p/kms/xks/v1/keys/k-1/encrypt", "/kms/xks/v1/keys/k/metadata",
                           "/p/kms/xks/v1/keys/k/decrypt", "/kms/xks/v1/keys//encrypt",
                           "/kms/xks/v1/keys/a/b/decrypt", "/keyhold-health", "/"]):
        write("xks_path", str(i), p.encode())

    for i, (sel, body) in enumerate([
        (0, j(HEALTH)), (0, b""), (0, b"{}"), (1, j(METADATA)), (2, j(ENCRYPT)),
        (2, j(dict(ENCRYPT, plaintext=""))), (3, j(DECRYPT)),
        (3, j(dict(DECRYPT, initializationVector="AAAAAAAAAAAAAAAAAAAAAA=="))),
        (2, b'"{\\"plaintext\\":\\"SECRET\\"}"'), (2, b'{"plaintext": 5}'),
        (3, b'{"requestMetadata": {"kmsRequestId": ["SECRET"]}}'), (1, b'["x"]'),
    ]):
        write("xks_body", str(i), bytes([sel]) + body)

    admin = [
        (0, {"id": "123456789012", "name": "acme", "regions": ["eu-west-1"],
             "acl": [{"principal": "group:ops", "permissions": ["manage_keys"]}]}),
        (1, {"name": "acme2", "regions": ["us-east-1"]}),
        (2, {"name": "aws", "access_key_id": "AKIAIOSFODNN7EXAMPLE",
             "secret_access_key": SECRET, "role_arn": "arn:aws:iam::123456789012:role/x"}),
        (3, {"name": "luna", "module": "/usr/lib/softhsm/libsofthsm2.so", "token_label": "t",
             "pin_env": "PIN", "module_env": {"SOFTHSM2_CONF": "/etc/softhsm2.conf"}}),
        (4, {"external_id": "k-1", "source_key": "key1"}),
        (5, {"name": "nightly", "recurrence": {"type": "daily", "at": "03:00"}}),
        (5, {"name": "w", "recurrence": {"type": "weekly", "day": "mon", "at": "23:59"}}),
        (5, {"name": "m", "recurrence": {"type": "monthly", "day": 28, "at": "00:00"}}),
        (5, {"name": "c", "recurrence": {"type": "cron", "expression": "*/30 8-18 * * mon-fri"}}),
        (5, {"name": "c", "recurrence": {"type": "cron", "expression": "0 0 L 2 *"}}),
        (6, {"schedule": "nightly"}),
        (7, {"user": "admin", "password": "correct horse"}),
        (8, {"name": "hsm", "plugin": "luna", "hsm_connection": "luna"}),
        (9, {"name": "key1", "usage": ["encrypt", "decrypt"], "exportable": False}),
        (10, {"name": "store", "source": "hsm", "health_check_key": "hc",
              "uri_path_prefix": "tenants/acme", "max_credentials": 3,
              "region": "eu-west-1", "account": "123456789012", "rotation_schedule": "nightly"}),
        (11, {"name": "s2", "mtls": True, "max_credentials": 2}),
        (12, {"name": "s", "region": "eu-west-1"}),
        (13, {"description": "ci", "expires_at": 1900000000}),
        (14, {"name": "alice@example.com", "password": "long enough pw", "groups": ["ops"]}),
        (15, {"password": "new password", "current_password": "old"}),
    ]
    for i, (sel, body) in enumerate(admin):
        write("admin_json", str(i), bytes([sel]) + j(body))
    write("admin_json", "blank", b"\x0d  \n")


if __name__ == "__main__":
    sys.exit(main())
