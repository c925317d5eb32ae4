"""How far every reader group has read, in the relay's positions (relay_readers.Progress):
after a lost log the relay publishes again only what follows it."""

from opportunity.adapters.relay_readers import MAX_MARKS, Progress

GROUPS = ["projections", "reminders"]


def relayed() -> Progress:
    """A relay that published three batches on partitions 0 and 1; no group committed yet."""
    progress = Progress(0)
    progress.published(10, {0: 5, 1: 3})
    progress.published(20, {0: 8, 1: 6})
    progress.published(30, {0: 12, 1: 6})
    assert progress.read(GROUPS, [0, 1], {}) == 0
    return progress


def test_every_group_read_through_the_least_position_all_of_them_passed() -> None:
    progress = relayed()
    commits = {
        ("projections", 0): 8,  # read partition 0 up to batch 20
        ("projections", 1): 6,  # read partition 1 up to batch 30 (nothing came after 20)
        ("reminders", 0): 12,
        ("reminders", 1): 6,
    }
    assert progress.read(GROUPS, [0, 1], commits) == 20


def test_a_group_that_committed_nothing_keeps_the_relay_where_it_was() -> None:
    progress = relayed()
    assert progress.read(GROUPS, [0, 1], {("projections", 0): 12, ("projections", 1): 6}) == 0


def test_a_commit_first_seen_in_a_new_log_is_trusted_only_once_it_moves() -> None:
    progress = Progress(7)
    progress.start_over()
    progress.published(10, {0: 5})
    progress.published(20, {0: 9})
    stale = {("projections", 0): 500, ("reminders", 0): 500}  # from the log the broker lost
    assert progress.read(GROUPS, [0], stale) == 7
    assert progress.read(GROUPS, [0], stale) == 7
    moved = {("projections", 0): 9, ("reminders", 0): 5}
    assert progress.read(GROUPS, [0], moved) == 10


def test_the_position_never_goes_back() -> None:
    progress = relayed()
    ahead = {(g, p): 12 for g in GROUPS for p in (0, 1)}
    assert progress.read(GROUPS, [0, 1], ahead) == 30
    assert progress.read(GROUPS, [0, 1], {(g, p): 1 for g in GROUPS for p in (0, 1)}) == 30


def test_starting_over_forgets_the_marks() -> None:
    progress = relayed()
    progress.start_over()
    assert progress.marks == []
    commits = {(g, p): 6 for g in GROUPS for p in (0, 1)}
    assert progress.read(GROUPS, [0, 1], commits) == 0  # no mark: nothing to tell


def test_thinning_the_marks_only_ever_answers_lower() -> None:
    exact, thinned = Progress(0), Progress(0)
    for n in range(1, 3 * MAX_MARKS):
        exact.marks.append((n, {0: n}))
        thinned.published(n, {0: n})
    assert len(thinned.marks) <= MAX_MARKS
    commits = {(g, 0): 2 * MAX_MARKS for g in GROUPS}
    assert 0 < thinned.read(GROUPS, [0], commits) <= exact.read(GROUPS, [0], commits)
