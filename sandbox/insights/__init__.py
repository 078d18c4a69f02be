"""What the partner's traffic tells about the partner: a report card of how its client and
receiver behaved (:mod:`sandbox.insights.card`) and what of the documented surface it
exercised (:mod:`sandbox.insights.coverage`). Both are pure: they read journal entries and
delivery attempts handed to them, so they are tested without a server."""
