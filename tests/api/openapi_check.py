"""Checks answers against the OpenAPI document's schemas.

Reads {"document": <the OpenAPI document>, "answers": [{"method", "path"
(the document's template), "status", "content_type", "body"}]} on stdin;
prints one line per answer that its documented schema refuses, and exits
1 if there was any. An answer must match the response its status is
documented with (or the document's 4XX/5XX), under its content type.
"""
import json
import sys

from jsonschema import Draft202012Validator


def documented(document, answer):
    operation = document["paths"][answer["path"]][answer["method"]]
    responses = operation["responses"]
    status = str(answer["status"])
    response = responses.get(status) or responses.get(status[0] + "XX")
    if response is None:
        return None, f"status {status} is not documented"
    content = response.get("content", {})
    media = answer["content_type"].split(";")[0].strip()
    if media not in content:
        return None, f"{media} is not documented for {status} (only {sorted(content)})"
    return content[media]["schema"], None


def main():
    given = json.load(sys.stdin)
    document = given["document"]
    refused = 0
    for answer in given["answers"]:
        where = f'{answer["method"].upper()} {answer["path"]} {answer["status"]}'
        schema, problem = documented(document, answer)
        if problem:
            print(f"{where}: {problem}")
            refused += 1
            continue
        # The schema's $refs point into the document's components.
        rooted = dict(schema, components=document["components"])
        for error in Draft202012Validator(rooted).iter_errors(answer["body"]):
            path = "/".join(str(p) for p in error.absolute_path)
            print(f"{where}: at /{path}: {error.message}")
            refused += 1
    print(f"checked {len(given['answers'])} answers, {refused} refused")
    sys.exit(1 if refused else 0)


main()
