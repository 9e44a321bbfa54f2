"""Web search wire formats: Brave (GET, X-Subscription-Token) and Tavily (POST, bearer key)."""

from __future__ import annotations

from typing import Any, Protocol

from guardian.providers.types import HttpCall, SearchRequest, SearchResult, malformed
from protocol.pyfun import ProviderConfig

MAX_SNIPPET = 2000
#: Results when neither the caller nor the provider's `default_results` names a number.
DEFAULT_RESULTS = 5


def result_count(requested: int | None, provider: ProviderConfig) -> int:
    """How many results to ask `provider` for: the caller's number, else the provider's
    `default_results`, else 5; never more than its `max_results`."""
    count = requested or provider.default_results or DEFAULT_RESULTS
    if provider.max_results is not None:
        count = min(count, provider.max_results)
    return count


class SearchAdapter(Protocol):
    def search(self, key: str | None, request: SearchRequest) -> HttpCall: ...

    def parse(self, body: Any) -> SearchResult: ...


def _result(title: Any, url: Any, snippet: Any) -> dict[str, str] | None:
    if not isinstance(url, str) or not url:
        return None
    return {
        "title": title if isinstance(title, str) else "",
        "url": url,
        "snippet": snippet[:MAX_SNIPPET] if isinstance(snippet, str) else "",
    }


class BraveAdapter:
    def __init__(self, provider: ProviderConfig) -> None:
        self.provider = provider

    def search(self, key: str | None, request: SearchRequest) -> HttpCall:
        headers = {"accept": "application/json", **dict(self.provider.headers)}
        if key:
            headers["x-subscription-token"] = key
        return HttpCall(
            method="GET",
            url=self.provider.base_url,
            headers=headers,
            params={"q": request.query, "count": str(min(request.max_results, 20))},
        )

    def parse(self, body: Any) -> SearchResult:
        web = body.get("web") if isinstance(body, dict) else None
        items = web.get("results") if isinstance(web, dict) else None
        if web is not None and not isinstance(items, list):
            raise malformed("Brave reply whose web.results is not a list")
        results = [
            r
            for item in items or []
            if isinstance(item, dict)
            if (r := _result(item.get("title"), item.get("url"), item.get("description")))
        ]
        if not isinstance(body, dict):
            raise malformed("Brave reply is not an object")
        return SearchResult(results=results)


class TavilyAdapter:
    def __init__(self, provider: ProviderConfig) -> None:
        self.provider = provider

    def search(self, key: str | None, request: SearchRequest) -> HttpCall:
        headers = {
            "content-type": "application/json",
            "accept": "application/json",
            **dict(self.provider.headers),
        }
        if key:
            headers["authorization"] = f"Bearer {key}"
        return HttpCall(
            method="POST",
            url=self.provider.base_url,
            headers=headers,
            json={
                "query": request.query,
                "max_results": request.max_results,
                "include_answer": self.provider.include_answer,
            },
        )

    def parse(self, body: Any) -> SearchResult:
        if not isinstance(body, dict) or not isinstance(body.get("results"), list):
            raise malformed("Tavily reply without a results list")
        results = [
            r
            for item in body["results"]
            if isinstance(item, dict)
            if (r := _result(item.get("title"), item.get("url"), item.get("content")))
        ]
        answer = body.get("answer")
        return SearchResult(results=results, answer=answer if isinstance(answer, str) else None)


def search_adapter(provider: ProviderConfig) -> SearchAdapter:
    if provider.api == "tavily":
        return TavilyAdapter(provider)
    return BraveAdapter(provider)
