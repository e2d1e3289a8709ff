"""Stand-in for aws-actions/configure-aws-credentials (OIDC mode): AssumeRoleWithWebIdentity, then export the
session's credentials to the later steps of the job. Standard library only (the runner has no boto3)."""

from __future__ import annotations

import json
import os
import sys
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET  # nosec B405 - the response of the STS endpoint the job was given

NS = {"sts": "https://sts.amazonaws.com/doc/2011-06-15/"}


def fail(message: str) -> None:
    print(f"::error::{message}")
    sys.exit(1)


def web_identity_token(audience: str) -> str:
    url, bearer = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_URL"), os.environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    if url and bearer:
        request = urllib.request.Request(f"{url}&audience={urllib.parse.quote(audience)}",  # noqa: S310
                                         headers={"Authorization": f"Bearer {bearer}"})
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 # nosec B310
            return json.load(response)["value"]
    token = os.environ.get("COLORS_STAND_IN_OIDC_TOKEN")
    if not token:
        fail("no web identity token: ACTIONS_ID_TOKEN_REQUEST_URL (GitHub, needs `id-token: write`) and "
             "COLORS_STAND_IN_OIDC_TOKEN (the local engine) are both unset")
    return token


def main() -> None:
    role, region, session = os.environ["ROLE_ARN"], os.environ["REGION"], os.environ["SESSION"]
    if not role.startswith("arn:aws:iam::"):
        fail(f"role-to-assume is {role!r}: an IAM role ARN (arn:aws:iam::<account>:role/<name>) is required")
    if not region:
        fail("aws-region is empty")
    endpoint = (os.environ.get("AWS_ENDPOINT_URL_STS") or os.environ.get("AWS_ENDPOINT_URL")
                or f"https://sts.{region}.amazonaws.com")
    body = urllib.parse.urlencode({
        "Action": "AssumeRoleWithWebIdentity", "Version": "2011-06-15", "RoleArn": role,
        "RoleSessionName": session, "WebIdentityToken": web_identity_token(os.environ["AUDIENCE"]),
        "DurationSeconds": "3600"}).encode()
    request = urllib.request.Request(endpoint, data=body, method="POST",  # noqa: S310
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 # nosec B310
            root = ET.fromstring(response.read())  # noqa: S314 # nosec B314
    except urllib.error.HTTPError as exc:
        fail(f"AssumeRoleWithWebIdentity for {role} at {endpoint} was refused ({exc.code}): "
             f"{exc.read().decode(errors='replace')[:500]}")
    result = root.find("sts:AssumeRoleWithWebIdentityResult", NS)
    credentials = result.find("sts:Credentials", NS)
    values = {key: credentials.find(f"sts:{name}", NS).text for key, name in (
        ("AWS_ACCESS_KEY_ID", "AccessKeyId"), ("AWS_SECRET_ACCESS_KEY", "SecretAccessKey"),
        ("AWS_SESSION_TOKEN", "SessionToken"))}
    for value in values.values():
        print(f"::add-mask::{value}")
    with open(os.environ["GITHUB_ENV"], "a", encoding="utf-8") as env:
        for key, value in {**values, "AWS_REGION": region, "AWS_DEFAULT_REGION": region}.items():
            env.write(f"{key}={value}\n")
    assumed = result.find("sts:AssumedRoleUser/sts:Arn", NS).text
    print(f"Assumed {role} as {assumed} (stand-in for aws-actions/configure-aws-credentials)")


if __name__ == "__main__":
    main()
