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
