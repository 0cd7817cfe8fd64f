namespace Sd.Loaders.Tests;

/// <summary>
/// A fact that needs ../shared/fixtures. When the fixtures are absent it is reported as SKIPPED with the reason
/// (where they were looked for), never as passed.
/// </summary>
public sealed class FixtureFactAttribute : FactAttribute
{
    public FixtureFactAttribute()
    {
        Skip = Fixtures.MissingReason;
    }
}

/// <summary>The theory counterpart of <see cref="FixtureFactAttribute"/>.</summary>
public sealed class FixtureTheoryAttribute : TheoryAttribute
{
    public FixtureTheoryAttribute()
    {
        Skip = Fixtures.MissingReason;
    }
}
