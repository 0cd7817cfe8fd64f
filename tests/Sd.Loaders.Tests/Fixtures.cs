namespace Sd.Loaders.Tests;

/// <summary>
/// Locates the shared reference fixtures: <c>shared/fixtures</c> beside the repository root (the folder that holds
/// Engine.sln), found by walking up from the test binaries (the test assembly's folder, not AppContext.BaseDirectory:
/// under a console runner that is the runner's own folder). Tests that need them use
/// <see cref="FixtureFactAttribute"/> / <see cref="FixtureTheoryAttribute"/>, which report SKIPPED with
/// <see cref="MissingReason"/> when the folder is absent: never a silent pass.
/// </summary>
internal static class Fixtures
{
    static Fixtures()
    {
        RepositoryRoot = FindRepositoryRoot(BinariesFolder);
        if (RepositoryRoot is null)
        {
            MissingReason = $"shared fixtures not found: no Engine.sln in any folder above {BinariesFolder}";
            return;
        }
        string expected = System.IO.Path.GetFullPath(System.IO.Path.Combine(RepositoryRoot, "..", "shared", "fixtures"));
        if (Directory.Exists(expected))
        {
            Root = expected;
        }
        else
        {
            MissingReason = $"shared fixtures not found at {expected} (they live beside the repository as ../shared/fixtures)";
        }
    }

    /// <summary>The folder of the test assembly this file is compiled into (its copied Data files are there too).</summary>
    public static string BinariesFolder { get; } = System.IO.Path.GetDirectoryName(typeof(Fixtures).Assembly.Location)!;

    /// <summary>The folder above the test binaries that holds Engine.sln, or null when there is none.</summary>
    public static string? RepositoryRoot { get; }

    /// <summary>The fixtures folder, or null when it is absent.</summary>
    public static string? Root { get; }

    /// <summary>Why fixture tests are skipped, or null when the fixtures are present.</summary>
    public static string? MissingReason { get; }

    /// <summary>
    /// The full path of a fixture file or folder relative to the fixtures folder. Only call it from fixture tests
    /// (which are skipped when the folder is absent); a fixture missing from a folder that exists is an error.
    /// </summary>
    public static string Path(string relativePath)
    {
        if (Root is null)
        {
            throw new InvalidOperationException(MissingReason);
        }
        string path = System.IO.Path.Combine(Root, relativePath);
        if (!File.Exists(path) && !Directory.Exists(path))
        {
            throw new FileNotFoundException($"fixture {relativePath} is missing from {Root}", path);
        }
        return path;
    }

    private static string? FindRepositoryRoot(string start)
    {
        for (var folder = new DirectoryInfo(start); folder != null; folder = folder.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(folder.FullName, "Engine.sln")))
            {
                return folder.FullName;
            }
        }
        return null;
    }
}
