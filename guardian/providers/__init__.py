"""Provider wire formats: each module turns our request into one provider's HTTP call and its
reply back into our result. No module here decides where a call goes; `guardian.calls` does."""
