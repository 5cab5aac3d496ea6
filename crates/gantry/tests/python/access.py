"""Access reviews, whoami and service account tokens from Python (JSON
bodies, unlike kubectl's typed commands)."""

from kubernetes import client

from common import expect_status, setup

ns, api = setup()
core = client.CoreV1Api(api)
authz = client.AuthorizationV1Api(api)
authn = client.AuthenticationV1Api(api)

review = authz.create_self_subject_access_review(client.V1SelfSubjectAccessReview(
    spec=client.V1SelfSubjectAccessReviewSpec(
        resource_attributes=client.V1ResourceAttributes(verb="delete", resource="pods", namespace=ns),
    ),
))
assert review.status.allowed is True, review.status

me = authn.create_self_subject_review(client.V1SelfSubjectReview())
assert me.status.user_info.username == "admin", me.status
assert "system:masters" in me.status.user_info.groups, me.status

core.create_namespaced_service_account(ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="robot")))
issued = core.create_namespaced_service_account_token("robot", ns, client.AuthenticationV1TokenRequest(
    spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600),
))
token = issued.status.token
assert token.count(".") == 2, token
assert issued.status.expiration_timestamp is not None

# The token authenticates as the service account.
configuration = client.Configuration.get_default_copy()
configuration.cert_file = None
configuration.key_file = None
configuration.api_key = {"authorization": f"Bearer {token}"}
as_robot = client.ApiClient(configuration)
who = client.AuthenticationV1Api(as_robot).create_self_subject_review(client.V1SelfSubjectReview())
assert who.status.user_info.username == f"system:serviceaccount:{ns}:robot", who.status
assert f"system:serviceaccounts:{ns}" in who.status.user_info.groups, who.status
client.CoreV1Api(as_robot).list_namespaced_config_map(ns)

# A TokenReview says the same.
tr = authn.create_token_review(client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token)))
assert tr.status.authenticated is True, tr.status
assert tr.status.user.username == f"system:serviceaccount:{ns}:robot", tr.status
bad = authn.create_token_review(client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token + "x")))
assert not bad.status.authenticated, bad.status

# Deleting the service account revokes its tokens.
core.delete_namespaced_service_account("robot", ns)
expect_status(401, client.CoreV1Api(as_robot).list_namespaced_config_map, ns)
print("ok")
