using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("Sd.Engine.Tests")]
