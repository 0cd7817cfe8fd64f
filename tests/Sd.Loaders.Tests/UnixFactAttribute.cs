namespace Sd.Loaders.Tests;

/// <summary>A fact about pipes, devices and links: skipped, with the reason, where there are none (Windows).</summary>
public sealed class UnixFactAttribute : FactAttribute
{
    public UnixFactAttribute()
    {
        if (OperatingSystem.IsWindows())
        {
            Skip = "named pipes, /dev and symbolic links as these tests use them are Unix only";
        }
    }
}

/// <summary>
/// A fact about file permissions: skipped, with the reason, where they are not Unix's or where the tests run as root,
/// whom Linux lets read and search everything.
/// </summary>
public sealed partial class UnixNonRootFactAttribute : FactAttribute
{
    public UnixNonRootFactAttribute()
    {
        if (OperatingSystem.IsWindows())
        {
            Skip = "Unix file modes only";
        }
        else if (EffectiveUserId() == 0)
        {
            Skip = "running as root, which no file mode denies; run the tests as another user to check permission errors";
        }
    }

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint EffectiveUserId();
}
